"""Integration keys (SPEC 9.2): issued in the admin or by `create_api_key` (shown once,
stored hashed), revocable, scoped to rooms, each acting as a bot user marked `is_bot`;
the seed's `POST /messages` and Slack-style webhooks post through them."""

import hashlib
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from accounts.integrations import bot_for_key, issue_api_key, revoke_api_key
from accounts.models import ApiKey
from chatproject.errors import Unauthenticated
from messaging.models import Message
from tests.conftest import client_for
from tests.factories import make_room

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"
KEY_RE = re.compile(r"chat_[A-Za-z0-9_-]{43}")
SEED_BODY = {
    "room_id": None,
    "content": "Hello World",
    "user_id": "system",
    "username": "System",
    "type": "text",
    "title": "Announcement",
    "payload": {"priority": "high"},
    "attachment_urls": ["https://example.com/file.pdf"],
}


@pytest.fixture
def room(user):
    return make_room(owner=user, name="Deploys")


@pytest.fixture
def issued(room, staff_user):
    key, raw = issue_api_key(name="CI", room_ids=[room.pk], created_by=staff_user)
    return key, raw


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def seed_body(room, **changes) -> dict:
    return {**SEED_BODY, "room_id": str(room.pk), **changes}


# ---------------------------------------------------------------- issuing, the key itself


def test_an_issued_key_is_stored_only_as_its_hash_with_a_bot_user(issued, room):
    key, raw = issued

    assert KEY_RE.fullmatch(raw)
    key.refresh_from_db()
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {key.name, key.prefix, key.key_hash}
    assert raw.startswith(key.prefix) and len(key.prefix) < 16
    assert key.bot.is_bot and not key.bot.has_usable_password()
    assert list(key.rooms.all()) == [room]


def test_bot_for_key_refuses_malformed_unknown_and_revoked_keys(issued):
    key, raw = issued
    assert bot_for_key(raw) == (key.bot, key)

    for wrong in ["", "chat_short", "eyJhbGciOi.x.y", raw[:-1] + ("A" if raw[-1] != "A" else "B")]:
        with pytest.raises(Unauthenticated):
            bot_for_key(wrong)
    revoke_api_key(key=key)
    with pytest.raises(Unauthenticated, match="revoked"):
        bot_for_key(raw)


def test_the_command_prints_the_key_once_and_stores_its_hash(room):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_key", "--name", "Nightly", "--room", room.slug, stdout=out, stderr=err)

    raw = out.getvalue().strip()
    assert KEY_RE.fullmatch(raw)
    key = ApiKey.objects.get(name="Nightly")
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert list(key.rooms.all()) == [room]
    assert raw not in err.getvalue()


def test_a_key_cannot_be_named_like_a_person(user, room, staff_user):
    for name in ["alice", "ALICE", "ad\u200bmin"]:
        with pytest.raises(CommandError):
            call_command("create_api_key", "--name", name, "--room", str(room.pk))
    staff_user.is_superuser = True
    staff_user.save()
    admin = Client()
    admin.force_login(staff_user)
    page = admin.post("/admin/accounts/apikey/add/", {"name": "Alice", "rooms": [room.pk]})
    assert page.status_code == 200 and not KEY_RE.search(page.content.decode())
    assert not ApiKey.objects.exists()


def test_the_command_refuses_an_unknown_room():
    with pytest.raises(CommandError, match="No room"):
        call_command("create_api_key", "--name", "X", "--room", "no-such-room")
    assert not ApiKey.objects.exists()


def test_the_admin_shows_a_new_key_once_and_revokes_it(staff_user, room):
    staff_user.is_superuser = True
    staff_user.save()
    admin = Client()
    admin.force_login(staff_user)

    page = admin.post("/admin/accounts/apikey/add/", {"name": "Grafana", "rooms": [room.pk]})

    assert page.status_code == 200, page.content[:500]
    assert "no-store" in page["Cache-Control"]
    [raw] = KEY_RE.findall(page.content.decode())[:1]
    key = ApiKey.objects.get(name="Grafana")
    assert key.created_by == staff_user
    assert bot_for_key(raw)[1] == key
    change = admin.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    listing = admin.get("/admin/accounts/apikey/").content.decode()
    assert raw not in change and raw not in listing and key.prefix in listing

    admin.post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [key.pk], "index": "0"},
    )
    key.refresh_from_db()
    assert key.revoked_at is not None
    with pytest.raises(Unauthenticated):
        bot_for_key(raw)


# -------------------------------------------------------------------- POST /messages


def test_seed_broadcast_posts_as_the_bot_with_the_seed_username(
    issued, room, broadcasts, committing
):
    key, raw = issued

    with committing():
        response = key_client(raw).post("/messages", seed_body(room), format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    message = body["message"]
    assert message["sender"] == {
        "id": key.bot.pk,
        "username": key.bot.username,
        "display_name": "CI",
        "is_bot": True,
    }
    assert message["content"] == "Hello World" and message["title"] == "Announcement"
    assert message["payload"] == {
        "priority": "high",
        "display_name": "System",
        "external_user_id": "system",
    }
    assert message["attachments"] == [{"url": "https://example.com/file.pdf"}]
    [(group, event)] = [(g, e) for g, e in broadcasts if e.get("type") == "message"]
    assert group == f"room.{room.pk}" and event["message"]["sender"]["is_bot"] is True


def test_seed_broadcast_finds_the_room_by_slug(issued, room):
    _, raw = issued
    response = key_client(raw).post("/messages", seed_body(room, room_id=room.slug), format="json")
    assert response.status_code == 200, response.json()
    assert Message.objects.get(content="Hello World").room == room


def test_a_key_cannot_post_outside_its_rooms(issued, user):
    _, raw = issued
    elsewhere = make_room(owner=user, name="Elsewhere")
    private = make_room(owner=user, name="Secret", kind="private")

    for target in (elsewhere, private):
        response = key_client(raw).post("/messages", seed_body(target), format="json")
        assert response.status_code == 403, response.json()
        assert response.json()["code"] == "forbidden"
    response = key_client(raw).post(
        "/messages", seed_body(elsewhere, room_id="nope"), format="json"
    )
    assert response.status_code == 403
    assert not Message.objects.filter(content="Hello World").exists()


def test_a_revoked_or_malformed_key_is_a_401(issued, room):
    key, raw = issued
    revoke_api_key(key=key)

    for bad in (raw, "chat_not-a-key", "chat_" + "x" * 43):
        response = key_client(bad).post("/messages", seed_body(room), format="json")
        assert response.status_code == 401, (bad, response.json())
        assert response.json()["code"] == "unauthenticated"
    assert not Message.objects.filter(content="Hello World").exists()


def test_a_body_missing_fields_is_a_400_with_a_code(issued, room):
    _, raw = issued
    client = key_client(raw)

    no_room = client.post("/messages", {"content": "hi"}, format="json")
    no_content = client.post("/messages", {"room_id": room.pk}, format="json")
    not_object = client.post("/messages", ["hi"], format="json")
    bad_type = client.post("/messages", seed_body(room, type="nonsense"), format="json")

    assert no_room.status_code == 400 and no_room.json()["code"] == "validation_error"
    assert "room_id" in no_room.json()
    assert no_content.status_code == 400 and no_content.json()["code"] == "validation_error"
    assert not_object.status_code == 400 and not_object.json()["code"] == "validation_error"
    assert bad_type.status_code == 400 and bad_type.json()["code"] == "validation_error"


def test_a_bot_cannot_post_announcements_or_spoof_with_invisible_names(issued, room):
    _, raw = issued
    client = key_client(raw)

    announcement = client.post("/messages", seed_body(room, type="announcement"), format="json")
    invisible = client.post("/messages", seed_body(room, username="ad\u200bmin"), format="json")

    assert announcement.status_code == 403 and announcement.json()["code"] == "forbidden"
    assert invisible.status_code == 400 and invisible.json()["code"] == "validation_error"


def test_a_key_floods_into_chat_rate_limit(issued, room, settings):
    settings.CHAT_RATE_LIMIT = (3, 60)
    _, raw = issued
    client = key_client(raw)

    answers = [client.post("/messages", seed_body(room), format="json") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["code"] == "rate_limited" and answers[-1]["Retry-After"]
    assert Message.objects.filter(content="Hello World").count() == 3


def test_a_key_is_refused_on_every_other_endpoint(issued, room):
    _, raw = issued
    client = key_client(raw)

    for method, path in [
        ("get", "/api/rooms/"),
        ("post", f"/api/rooms/{room.pk}/join/"),
        ("post", f"/api/rooms/{room.pk}/messages/"),
        ("get", "/api/auth/me/"),
    ]:
        response = getattr(client, method)(path, {"content": "x"}, format="json")
        assert response.status_code == 403, (path, response.status_code)
        assert response.json()["code"] == "forbidden"


def test_staff_tokens_may_broadcast_and_other_users_may_not(staff_user, user, room):
    mine = client_for(staff_user).post("/messages", seed_body(room), format="json")
    theirs = client_for(user).post("/messages", seed_body(room), format="json")

    assert mine.status_code == 200, mine.json()
    assert mine.json()["message"]["sender"]["id"] == staff_user.pk
    assert theirs.status_code == 403 and theirs.json()["code"] == "forbidden"


def test_jwts_still_authenticate_beside_keys(user, room):
    response = client_for(user).post(
        f"/api/rooms/{room.pk}/messages/", {"content": "hi"}, format="json"
    )
    assert response.status_code == 201
    assert "is_bot" not in response.json()["sender"]


# ----------------------------------------------------------------------- webhooks


def test_a_webhook_posts_text_into_the_keys_room_and_answers_ok(issued, room):
    key, raw = issued

    response = APIClient().post(
        f"/api/hooks/{raw}/", {"text": "Build *green*", "username": "CI bot"}, format="json"
    )

    assert response.status_code == 200
    assert response.content == b"ok"
    message = Message.objects.get(content="Build *green*")
    assert message.room == room and message.sender == key.bot
    assert message.payload == {"display_name": "CI bot"}


def test_a_webhook_takes_slacks_form_encoded_payload(issued, room):
    _, raw = issued
    response = Client().post(
        f"/api/hooks/{raw}/", 'payload={"text": "from a form"}', content_type=FORM
    )
    assert response.status_code == 200 and response.content == b"ok"
    assert Message.objects.filter(content="from a form", room=room).exists()


def test_webhook_refusals_are_clear(issued, room, user):
    key, raw = issued
    client = APIClient()

    no_text = client.post(f"/api/hooks/{raw}/", {"username": "x"}, format="json")
    bad_form = Client().post(f"/api/hooks/{raw}/", "payload={not json", content_type=FORM)
    unknown = client.post("/api/hooks/chat_" + "A" * 43 + "/", {"text": "x"}, format="json")
    malformed = client.post("/api/hooks/nonsense/", {"text": "x"}, format="json")
    other_channel = client.post(
        f"/api/hooks/{raw}/", {"text": "x", "channel": "#elsewhere"}, format="json"
    )
    key.rooms.add(make_room(owner=user, name="Second"))
    two_rooms = client.post(f"/api/hooks/{raw}/", {"text": "x"}, format="json")
    named = client.post(f"/api/hooks/{raw}/", {"text": "y", "channel": "#Deploys"}, format="json")
    revoke_api_key(key=key)
    revoked = client.post(f"/api/hooks/{raw}/", {"text": "x"}, format="json")

    assert no_text.status_code == 400 and no_text.json()["code"] == "validation_error"
    assert bad_form.status_code == 400 and bad_form.json()["code"] == "validation_error"
    assert unknown.status_code == 401 and unknown.json()["code"] == "unauthenticated"
    assert malformed.status_code == 401 and malformed.json()["code"] == "unauthenticated"
    assert other_channel.status_code == 403 and other_channel.json()["code"] == "forbidden"
    assert two_rooms.status_code == 400 and "channel" in two_rooms.json()
    assert named.status_code == 200 and Message.objects.get(content="y").room == room
    assert revoked.status_code == 401
    assert not Message.objects.filter(content="x").exists()


def test_user_briefs_mark_bots_and_the_user_list_shows_it(issued, user, alice_api):
    key, _ = issued
    from accounts.selectors import user_briefs

    briefs = user_briefs([key.bot.pk, user.pk])

    assert briefs[key.bot.pk]["is_bot"] is True
    assert "is_bot" not in briefs[user.pk]
    listed = alice_api.get("/api/users/", {"search": key.bot.username}).json()["results"]
    assert [(u["id"], u["is_bot"]) for u in listed] == [(key.bot.pk, True)]
