from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401 (connects the receivers)
        from accounts.guests import start_sweeping
        from chatproject.signals import server_starting

        # Idle guests are removed by every server process on its own; no cron needed.
        server_starting.connect(
            lambda **kwargs: start_sweeping(), dispatch_uid="sweep-idle-guests", weak=False
        )
