"""Uploaded files: stored through Django's storage API, typed by their bytes, private to
their uploader until a message references them (then readable with the room).

Uploads that no message uses yet count against their uploader's UPLOAD_QUOTA_MB, and are
deleted after UNUSED_UPLOAD_HOURS by a sweep that each server process runs on its own
(`sweeper`), as `manage.py sweep_uploads` does by hand."""

import mimetypes
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from chatproject.errors import ChatError, QuotaExceeded, ValidationFailed
from chatproject.logs import get_logger
from chatproject.periodic import PeriodicJob
from chatproject.text import clean_text
from messaging.models import Attachment

log = get_logger(__name__)


def store_attachment(*, uploader: User, upload: Any) -> Attachment:
    """Keep an uploaded file (Django's default storage). Size and type checked here."""
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    if upload.size > limit:
        raise UploadTooLarge(f"The file is larger than {settings.MAX_UPLOAD_MB} MB.")
    if upload.size == 0:
        raise ValidationFailed("The file is empty.", fields={"file": ["The file is empty."]})
    name = clean_text(
        (upload.name or "file").replace("/", "_").replace("\\", "_")[-200:],
        field="name",
        max_length=200,
    )
    content_type = sniff_content_type(upload, name)
    with transaction.atomic():
        # The uploader's row, locked: their concurrent uploads are checked one at a time.
        list(User.objects.select_for_update().filter(pk=uploader.pk).values_list("pk"))
        if unused_bytes(uploader=uploader) + upload.size > settings.UPLOAD_QUOTA_MB * 1024 * 1024:
            raise QuotaExceeded(
                f"Uploads not yet sent in a message may hold at most {settings.UPLOAD_QUOTA_MB}"
                " MB per user: send them, or wait until unused ones are deleted"
                f" ({settings.UNUSED_UPLOAD_HOURS:g} h after their upload)."
            )
        return Attachment.objects.create(
            uploader=uploader, file=upload, name=name, size=upload.size, content_type=content_type
        )


def unused_bytes(*, uploader: User) -> int:
    """The size of the user's uploads that no message uses (what UPLOAD_QUOTA_MB bounds)."""
    unused = Attachment.objects.filter(uploader=uploader, message=None)
    return unused.aggregate(total=Sum("size"))["total"] or 0


class UploadTooLarge(ChatError):
    code = "too_large"
    status = 413


# Types a browser may show inline; anything else is served as a download.
INLINE_TYPES = {
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "text/plain",
    "application/pdf",
    "audio/mpeg",
    "audio/ogg",
    "video/mp4",
    "video/webm",
}
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
]


def sniff_content_type(upload: Any, name: str) -> str:
    """The type the file's bytes show; the client's claim is not trusted."""
    head = upload.read(16)
    upload.seek(0)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    # A file that claims to be an image but is not one is not shown as one.
    return "application/octet-stream" if guessed.startswith("image/") else guessed


def attachments_for_message(*, uploader: User, ids: Sequence[int]) -> list[Attachment]:
    """The uploader's own attachments not yet in a message, in the order given."""
    ids = list(dict.fromkeys(ids))
    found = {
        a.pk: a for a in Attachment.objects.filter(pk__in=ids, uploader=uploader, message=None)
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationFailed(
            f"Unknown or already used attachments: {missing}.",
            fields={"attachments": [f"Unknown or already used: {missing}."]},
        )
    return [found[i] for i in ids]


def forget_file(*, sender: type, instance: Attachment, **kwargs: Any) -> None:
    """`post_delete` of an Attachment (a purge, a deleted room, a message deleted for
    good): delete its file from storage once the deletion is committed. Django leaves
    files behind on purpose; here nothing else refers to them."""
    name, storage = instance.file.name, instance.file.storage
    if not name:
        return

    def delete() -> None:
        try:
            storage.delete(name)
        except Exception:
            log.exception("attachment_file_not_deleted", file=name)

    transaction.on_commit(delete)


def sweep_unused_uploads(*, older_than: timedelta) -> int:
    """Delete uploads that no message used within `older_than` of their upload (a client
    that uploaded and never sent). Their files go after the commit (`forget_file`).
    Returns how many."""
    cutoff = timezone.now() - older_than
    # One DELETE in a transaction; Django still sends `post_delete` for each row.
    deleted, _ = Attachment.objects.filter(message=None, created_at__lt=cutoff).delete()
    return deleted


def sweep_every() -> float:
    """Seconds between two sweeps of a server process: a quarter of UNUSED_UPLOAD_HOURS,
    between 1 s and an hour, so an upload outlives its time by at most that much."""
    return min(3600.0, max(1.0, settings.UNUSED_UPLOAD_HOURS * 3600 / 4))


# Started by every server process (messaging.apps, on `server_starting`): the DELETE is
# the same whoever runs it, and no process depends on another (or on cron) for its
# quota to come back.
sweeper = PeriodicJob(
    "upload-sweeper",
    lambda: sweep_unused_uploads(older_than=timedelta(hours=settings.UNUSED_UPLOAD_HOURS)),
    sweep_every,
)
