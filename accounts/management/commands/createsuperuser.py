"""Django's `createsuperuser`, with the email optional under `--noinput` too.

Registration asks no email, and the interactive command accepts a blank one; Django's
`--noinput` alone refuses to run without DJANGO_SUPERUSER_EMAIL ("You must use --email
with --noinput"). Here an unset email is a blank one.
"""

import os
from typing import Any

from django.contrib.auth.management.commands import createsuperuser


class Command(createsuperuser.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        if not options["interactive"] and options.get("email") is None:
            options["email"] = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        super().handle(*args, **options)
