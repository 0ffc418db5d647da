from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from chatproject.signals import server_starting
        from messaging import attachments
        from messaging.attachments import forget_file
        from messaging.models import Attachment

        post_delete.connect(forget_file, sender=Attachment, dispatch_uid="attachment-file")
        # Unused uploads are deleted by every server process on its own; no cron needed.
        server_starting.connect(
            lambda **kwargs: attachments.sweeper.start(),
            dispatch_uid="sweep-unused-uploads",
            weak=False,
        )
