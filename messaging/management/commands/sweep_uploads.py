from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from messaging.attachments import sweep_unused_uploads


class Command(BaseCommand):
    help = "Delete uploads that no message used (and their files), older than --hours."

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours", type=float, default=24.0, help="age of an unused upload (default: 24)"
        )

    def handle(self, *args, hours: float = 24.0, **options):
        if hours < 0:
            raise CommandError("--hours must not be negative.")
        swept = sweep_unused_uploads(older_than=timedelta(hours=hours))
        self.stdout.write(self.style.SUCCESS(f"Deleted {swept} unused upload(s)."))
