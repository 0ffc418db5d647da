"""Users' pictures (SPEC 11): uploaded, re-encoded, served from our origin."""

import io
import struct
import zlib

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, PngImagePlugin

from accounts.models import User
from accounts.selectors import user_briefs
from messaging.posting import post_message
from tests.factories import make_room

pytestmark = pytest.mark.django_db

AVATAR = "/api/auth/me/avatar/"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def png(size=(300, 200), mode="RGBA") -> bytes:
    image = Image.new(mode, size, (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret comment")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (640, 480), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° to show
    exif[0x010F] = "Camera maker"
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), comment=b"where I live")
    return out.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(side: int = 60_000) -> bytes:
    """A valid PNG header claiming side x side pixels, a few bytes long."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (side // 8 + 1) * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def upload(client, data: bytes, name: str = "me.png", content_type: str = "image/png"):
    file = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(AVATAR, {"file": file}, format="multipart")


def stored(user: User) -> Image.Image:
    user.refresh_from_db()
    with default_storage.open(user.avatar.name, "rb") as file:
        image = Image.open(io.BytesIO(file.read()))
        image.load()
        return image


def test_a_png_is_re_encoded_square_without_its_metadata(user, alice_api):
    answer = upload(alice_api, png())
    assert answer.status_code == 200, answer.content
    url = answer.json()["avatar"]
    assert url.startswith("/api/avatars/") and url.endswith(".webp")
    image = stored(user)
    assert (image.format, image.size, image.mode) == ("WEBP", (256, 256), "RGBA")
    assert "Comment" not in image.info and "exif" not in image.info
    assert "icc_profile" not in image.info


def test_a_jpeg_is_turned_upright_and_its_exif_dropped(user, alice_api):
    answer = upload(alice_api, jpeg_with_exif(), "me.jpg", "image/jpeg")
    assert answer.status_code == 200, answer.content
    image = stored(user)
    assert (image.format, image.size, image.mode) == ("WEBP", (256, 256), "RGB")
    assert not image.getexif()
    assert "comment" not in image.info


def test_the_picture_is_served_to_signed_in_users_and_cached_for_good(
    user, other_user, alice_api, bob_api, api
):
    url = upload(alice_api, png()).json()["avatar"]
    answer = bob_api.get(url)
    assert answer.status_code == 200
    assert answer["Content-Type"] == "image/webp"
    assert "immutable" in answer["Cache-Control"]
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(b"".join(answer.streaming_content))).size == (256, 256)
    assert api.get(url).status_code in (401, 403)
    assert bob_api.get("/api/avatars/..%2Fsecret.webp").status_code == 404
    assert bob_api.get("/api/avatars/1-00000000000000000000.webp").status_code == 404


def test_briefs_carry_the_avatar_only_when_there_is_one(user, other_user, alice_api, bob_api):
    room = make_room(owner=user, name="Pictures")
    post_message(room=room, author=user, content="before")
    url = upload(alice_api, png()).json()["avatar"]
    post_message(room=room, author=user, content="after")
    messages = alice_api.get(f"/api/rooms/{room.pk}/messages/").json()["results"]
    assert all(m["sender"]["avatar"] == url for m in messages if m["sender"])
    assert bob_api.get("/api/auth/me/").json()["avatar"] is None
    assert alice_api.get("/api/auth/me/").json()["avatar"] == url
    members = bob_api.get(f"/api/rooms/{room.pk}/members/").json()["results"]
    assert [m["user"]["avatar"] for m in members] == [url]
    assert user_briefs([user.pk, other_user.pk]) == {
        user.pk: {"id": user.pk, "username": "alice", "display_name": "Alice", "avatar": url},
        other_user.pk: {"id": other_user.pk, "username": "bob", "display_name": "Bob"},
    }


def test_a_new_picture_replaces_the_old_file(user, alice_api, committing):
    upload(alice_api, png())
    first = User.objects.get(pk=user.pk).avatar.name
    with committing():  # the old file goes once the new name is committed
        upload(alice_api, png(size=(100, 400), mode="RGB"))
    second = User.objects.get(pk=user.pk).avatar.name
    assert first != second
    assert default_storage.exists(second)
    assert not default_storage.exists(first)


def test_delete_removes_the_picture(user, alice_api, committing):
    url = upload(alice_api, png()).json()["avatar"]
    name = User.objects.get(pk=user.pk).avatar.name
    with committing():
        answer = alice_api.delete(AVATAR)
    assert answer.status_code == 204
    assert User.objects.get(pk=user.pk).avatar.name == ""
    assert not default_storage.exists(name)
    assert alice_api.get("/api/auth/me/").json()["avatar"] is None
    assert alice_api.get(url).status_code == 404


def test_a_text_file_is_415(user, alice_api):
    answer = upload(alice_api, b"just some words\n", "notes.png", "image/png")
    assert answer.status_code == 415
    assert answer.json()["code"] == "unsupported_media_type"
    assert User.objects.get(pk=user.pk).avatar.name == ""


def test_other_image_types_are_415(alice_api):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'
    assert upload(alice_api, svg, "x.svg", "image/svg+xml").status_code == 415
    bmp = io.BytesIO()
    Image.new("RGB", (4, 4)).save(bmp, format="BMP")
    assert upload(alice_api, bmp.getvalue(), "x.bmp", "image/bmp").status_code == 415


def test_a_broken_picture_is_400(alice_api):
    answer = upload(alice_api, b"\x89PNG\r\n\x1a\n" + b"garbage" * 100)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_image"
    truncated = png()[:200]
    assert upload(alice_api, truncated).status_code == 400


def test_a_picture_over_the_limit_is_413(settings, user, alice_api):
    settings.AVATAR_MAX_MB = 1
    big = png() + b"\0" * (1024 * 1024)
    answer = upload(alice_api, big)
    assert answer.status_code == 413
    assert answer.json()["code"] == "too_large"
    assert User.objects.get(pk=user.pk).avatar.name == ""


def test_a_decompression_bomb_is_refused_before_it_is_decoded(user, alice_api, monkeypatch):
    from PIL import ImageFile

    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda im: decoded.append(im.size) or real_load(im)
    )
    bomb = png_bomb()
    assert len(bomb) < 100_000
    answer = upload(alice_api, bomb)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_image"
    assert decoded == []  # its 3.6 gigapixels were never decoded
    assert User.objects.get(pk=user.pk).avatar.name == ""


def test_a_bomb_just_over_the_pixel_limit_is_refused_too(alice_api):
    assert upload(alice_api, png_bomb(side=5_100)).status_code == 400  # 26 megapixels


def test_without_a_file_is_400(alice_api):
    assert alice_api.post(AVATAR, {}, format="multipart").status_code == 400


def test_uploads_spend_the_write_budget(settings, alice_api):
    settings.WRITE_RATE_LIMIT = (2, 60)
    assert upload(alice_api, png()).status_code == 200
    assert upload(alice_api, png()).status_code == 200
    refused = upload(alice_api, png())
    assert refused.status_code == 429
    assert "Retry-After" in refused
