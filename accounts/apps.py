from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import (
            guests,
            signals,  # noqa: F401 (connects the receivers)
        )
        from chatproject.signals import server_starting

        # Idle guests are removed by every server process on its own; no cron needed.
        server_starting.connect(
            lambda **kwargs: guests.sweeper.start(), dispatch_uid="sweep-idle-guests", weak=False
        )
