from django.core.management.base import BaseCommand

from rooms.services import ensure_general_room


class Command(BaseCommand):
    help = "Create the General room if it does not exist (safe to run any number of times)."

    def add_arguments(self, parser):
        parser.add_argument("--name", default=None, help="room name (default: General)")
        parser.add_argument("--description", default="Everyone's room.")

    def handle(self, *args, name=None, description="", **options):
        room, created = ensure_general_room(name=name, description=description)
        verb = "Created" if created else "Found"
        self.stdout.write(self.style.SUCCESS(f"{verb} room {room.name!r} (id {room.pk})."))
