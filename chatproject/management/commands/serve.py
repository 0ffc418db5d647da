"""`python manage.py serve`: Daphne with the project's limits, a structured access log,
and a graceful drain on SIGTERM (SHUTDOWN_TIMEOUT bounds it). The server itself is
`chatproject.transport`; this command parses options and reports failures."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chatproject import transport
from chatproject.signals import server_starting


class Command(BaseCommand):
    help = "Serve HTTP and WebSockets with Daphne (HOST/PORT from the environment)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help=f"default: HOST ({settings.HOST})")
        parser.add_argument(
            "--port", type=int, default=None, help=f"default: PORT ({settings.PORT})"
        )
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help=(
                "believe X-Forwarded-For/-Port/-Proto from TRUSTED_PROXIES "
                f"({', '.join(str(n) for n in settings.TRUSTED_PROXIES)}) only"
            ),
        )

    def handle(self, *args, host=None, port=None, proxy_headers=False, **options):
        server_starting.send(sender=self.__class__)
        try:
            transport.serve(
                host=host or settings.HOST,
                port=settings.PORT if port is None else port,
                proxy_headers=proxy_headers,
            )
        except transport.IncompatibleDependency as exc:
            raise CommandError(str(exc)) from None
        except transport.ListenFailed as exc:
            raise CommandError(f"could not listen: {exc}") from None
