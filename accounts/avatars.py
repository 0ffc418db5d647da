"""Users' pictures (SPEC 11): uploaded, checked and re-encoded here, served from our own
origin (`accounts.views.AvatarFileView`) to signed-in users.

An upload is never stored as sent. Its first bytes must say PNG, JPEG, GIF or WebP
(anything else: 415); Pillow then opens it with only that decoder, and refuses it (400)
when it does not decode, or when its header claims more pixels than `MAX_PIXELS` (a
"decompression bomb": a few kilobytes that would inflate to gigabytes), before any pixel
is decoded. The first frame is turned upright (EXIF orientation), cropped to a centred
square, scaled to `SIZE` px and encoded afresh as WebP from its pixels alone: no EXIF, no
GPS position, no ICC profile, no comment, no trailing bytes, no animation.

The stored name carries a digest of the picture (`avatars/<user id>-<digest>.webp`), so
its URL changes with the picture and may be cached for good.
"""

import hashlib
import io
import re
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image, ImageOps, UnidentifiedImageError

from accounts.models import User, avatar_url
from chatproject import throttle
from chatproject.errors import ChatError
from chatproject.logs import get_logger

__all__ = ["avatar_url", "reencode", "remove_avatar", "store_avatar"]

log = get_logger(__name__)

SIZE = 256
# Decoding costs memory by the pixel (4 bytes each, RGBA): at most ~100 MB for one upload.
# A camera's picture (JPEG) is decoded at a fraction of its size (`draft`) anyway; the
# check reads the header only.
MAX_PIXELS = 25_000_000
MAX_SIDE = 16_384
QUALITY = 85
CONTENT_TYPE = "image/webp"
# The names `store_avatar` gives; the file view serves nothing else.
FILE_NAME = re.compile(r"[0-9]{1,20}-[0-9a-f]{20}\.webp\Z")

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


class AvatarTooLarge(ChatError):
    code = "too_large"
    status = 413


class UnsupportedImageType(ChatError):
    code = "unsupported_media_type"
    status = 415
    default_message = "A picture must be PNG, JPEG, GIF or WebP."


class InvalidImage(ChatError):
    code = "invalid_image"
    status = 400
    default_message = "The file is not a picture that can be read."


def max_bytes() -> int:
    return settings.AVATAR_MAX_MB * 1024 * 1024


def store_avatar(*, user: User, upload: Any) -> User:
    """Replace the user's picture with `upload` (a Django UploadedFile), re-encoded.
    Raises AvatarTooLarge (413), UnsupportedImageType (415) or InvalidImage (400)."""
    if upload.size > max_bytes():
        raise AvatarTooLarge(f"A picture may be at most {settings.AVATAR_MAX_MB} MB.")
    _check_write_rate(user)
    data = upload.read(max_bytes() + 1)
    if len(data) > max_bytes():
        raise AvatarTooLarge(f"A picture may be at most {settings.AVATAR_MAX_MB} MB.")
    encoded = reencode(data)
    digest = hashlib.sha256(encoded).hexdigest()[:20]
    name = f"avatars/{user.pk}-{digest}.webp"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(encoded))
    _set(user, name)
    return user


def _check_write_rate(user: User) -> None:
    """A new picture is a change others see, and decoding one costs CPU: it spends the
    user's WRITE_RATE_LIMIT, as room and message changes do."""
    throttle.spend_writes(user)


def remove_avatar(*, user: User) -> User:
    """Take the user's picture away (the page shows their initials again)."""
    _set(user, "")
    return user


def _set(user: User, name: str) -> None:
    with transaction.atomic():
        old = (
            User.objects.select_for_update()
            .filter(pk=user.pk)
            .values_list("avatar", flat=True)
            .get()
        )
        User.objects.filter(pk=user.pk).update(avatar=name)
        if old and old != name:
            transaction.on_commit(lambda: _delete_file(old))
    user.avatar.name = name


def _delete_file(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError:  # gone already, or the disk refused: an orphan file, nothing worse
        log.warning("avatar_file_not_deleted", name=name)


def image_kind(head: bytes) -> str | None:
    """Pillow's format name for these first bytes, among the four accepted; else None."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def reencode(data: bytes) -> bytes:
    """The picture in `data` as a square SIZE px WebP, from its first frame's pixels."""
    kind = image_kind(data[:16])
    if kind is None:
        raise UnsupportedImageType()
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            width, height = image.size
            if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
                raise InvalidImage(
                    f"The picture is {width}x{height} pixels; at most "
                    f"{MAX_PIXELS // 1_000_000} megapixels are accepted."
                )
            if kind == "JPEG":  # let libjpeg decode at a fraction of the size
                image.draft("RGB", (SIZE * 2, SIZE * 2))
            upright = ImageOps.exif_transpose(image)
            mode = "RGBA" if _has_alpha(upright) else "RGB"
            square = ImageOps.fit(upright.convert(mode), (SIZE, SIZE), Image.Resampling.LANCZOS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage("The picture has too many pixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise InvalidImage() from None
    # A new image from the pixels alone: nothing of the upload's metadata can follow.
    clean = Image.frombytes(mode, (SIZE, SIZE), square.tobytes())
    out = io.BytesIO()
    clean.save(out, format="WEBP", quality=QUALITY, method=4)
    return out.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
