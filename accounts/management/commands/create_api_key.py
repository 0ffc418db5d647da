"""`python manage.py create_api_key --name N --room R [--room R2]`: issue an integration
key (SPEC 9.2) and print it, once. A room is named by its id or its slug."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import integrations
from accounts.models import ApiKey
from chatproject.errors import ChatError


class Command(BaseCommand):
    help = "Issue an integration key scoped to rooms; the key is printed once, never stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="what the key is for (its bot's name)")
        parser.add_argument(
            "--room",
            action="append",
            required=True,
            help="a room the key may post to, by id or slug (repeat for several)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name or len(name) > 64:
            raise CommandError("--name must be 1 to 64 characters.")
        # The room model, through the key's relation: accounts does not import rooms.
        rooms = ApiKey.rooms.field.related_model._default_manager
        room_ids = []
        for ref in options["room"]:
            found = (
                rooms.filter(pk=int(ref))
                if ref.isdigit() and len(ref) < 19
                else rooms.filter(slug=ref)
            )
            room = found.exclude(kind="direct").first()
            if room is None:
                raise CommandError(f"No room {ref!r} (give a room's id or slug).")
            room_ids.append(room.pk)
        try:
            key, raw = integrations.issue_api_key(name=name, room_ids=room_ids, created_by=None)
        except ChatError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"Issued {key.name!r} (bot {key.bot.username}); copy the key now, "
            "it is not shown again:"
        )
        self.stdout.write(raw)
