from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.attachments import sweep_unused_uploads


class Command(BaseCommand):
    help = (
        "Delete uploads that no message used (and their files), older than --hours. "
        "Every `serve` process does this on its own; this is the same sweep, by hand."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours",
            type=float,
            default=None,
            help="age of an unused upload, in hours "
            f"(default: UNUSED_UPLOAD_HOURS, {settings.UNUSED_UPLOAD_HOURS:g})",
        )

    def handle(self, *args, hours: float | None = None, **options):
        if hours is None:
            hours = settings.UNUSED_UPLOAD_HOURS
        if hours < 0:
            raise CommandError("--hours must not be negative.")
        swept = sweep_unused_uploads(older_than=timedelta(hours=hours))
        self.stdout.write(self.style.SUCCESS(f"Deleted {swept} unused upload(s)."))
