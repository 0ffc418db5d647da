"""The REST side of the live features: edits, deletes, reactions, search, attachments,
direct rooms, read markers, stats, and the room list's unread counts."""

from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from messaging.attachments import store_attachment
from messaging.changes import add_reaction, delete_message
from messaging.models import Attachment, Message
from messaging.posting import post_message
from rooms.models import Membership, Room
from rooms.services import join_room
from tests.conftest import client_for
from tests.factories import UserFactory, add_member, make_room

pytestmark = pytest.mark.django_db

ROOMS = "/api/rooms/"
SEARCH = "/api/messages/search/"
ATTACHMENTS = "/api/attachments/"
DIRECT = "/api/direct/"
STATS = "/api/stats/"

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 32


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    """Uploads go to a directory of this test, not the checkout's `media/`."""
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def carol(db):
    return UserFactory(username="carol")


@pytest.fixture
def carol_api(carol):
    return client_for(carol)


@pytest.fixture
def public_room(user, other_user) -> Room:
    """A public room owned by alice, with bob as a member."""
    room = make_room(owner=user, name="Lounge")
    add_member(fresh(room), other_user)
    return fresh(room)


@pytest.fixture
def private_room(user, other_user) -> Room:
    """A private room owned by alice, with bob as a member."""
    room = make_room(owner=user, name="Hideout", kind="private")
    add_member(fresh(room), other_user)
    return fresh(room)


def fresh(obj):
    obj.refresh_from_db()
    return obj


def say(room: Room, author, content: str) -> Message:
    return post_message(room=room, author=author, content=content)[0]


def message_url(message: Message, suffix: str = "") -> str:
    return f"/api/messages/{message.pk}/{suffix}"


def reaction_url(message: Message, emoji: str) -> str:
    return message_url(message, f"reactions/{quote(emoji, safe='')}/")


def room_pos(room: Room) -> int:
    return Room.objects.values_list("pos", flat=True).get(pk=room.pk)


def listed(client, room: Room) -> dict | None:
    response = client.get(ROOMS, {"limit": 200})
    assert response.status_code == 200
    return next((r for r in response.json()["results"] if r["id"] == room.pk), None)


def found_ids(client, **params) -> list[int]:
    response = client.get(SEARCH, params)
    assert response.status_code == 200, response.content
    return [m["id"] for m in response.json()["results"]]


def upload(client, name: str, content: bytes, content_type: str = "application/octet-stream"):
    return client.post(
        ATTACHMENTS,
        {"file": SimpleUploadedFile(name, content, content_type=content_type)},
        format="multipart",
    )


def fetch_file(client, url: str) -> tuple[int, bytes, object]:
    """(status, body, response). Reading the whole stream also closes the file."""
    response = client.get(url)
    body = b"".join(response.streaming_content) if response.status_code == 200 else b""
    return response.status_code, body, response


# ---------------------------------------------------------------------- edit (PATCH)


def test_author_edits_a_message(alice_api, public_room, user):
    message = say(public_room, user, "first draft")

    response = alice_api.patch(message_url(message), {"content": "final"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["content"] == "final"
    assert body["edited_at"] is not None
    assert body["pos"] == room_pos(public_room) == message.seq + 1
    assert fresh(message).content == "final"


def test_editing_anothers_message_is_403(bob_api, public_room, user):
    message = say(public_room, user, "alice's words")

    response = bob_api.patch(message_url(message), {"content": "bob's words"}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert fresh(message).content == "alice's words"


def test_blank_edit_is_400(alice_api, public_room, user):
    message = say(public_room, user, "words")

    response = alice_api.patch(message_url(message), {"content": "  "}, format="json")

    assert response.status_code == 400
    assert fresh(message).content == "words"


def test_editing_a_message_of_an_unseen_private_room_is_404(carol_api, private_room, user):
    message = say(private_room, user, "in the hideout")

    response = carol_api.patch(message_url(message), {"content": "x"}, format="json")

    assert response.status_code == 404
    assert "Hideout" not in response.content.decode()
    assert fresh(message).content == "in the hideout"


def test_editing_a_missing_message_is_404(alice_api, user):
    response = alice_api.patch("/api/messages/999999/", {"content": "x"}, format="json")

    assert response.status_code == 404


# -------------------------------------------------------------------- delete (DELETE)


def test_author_deletes_a_message_softly(alice_api, public_room, user):
    message = say(public_room, user, "oops")

    response = alice_api.delete(message_url(message))

    assert response.status_code == 200
    body = response.json()
    assert body["deleted"] is True
    assert body["content"] == ""
    assert body["attachments"] == []
    assert body["pos"] == room_pos(public_room)
    assert Message.objects.get(pk=message.pk).deleted is True


def test_room_owner_deletes_a_members_message(alice_api, public_room, other_user):
    message = say(public_room, other_user, "spam")

    assert alice_api.delete(message_url(message)).status_code == 200
    assert fresh(message).deleted is True


def test_staff_deletes_any_message(public_room, other_user, staff_user):
    message = say(public_room, other_user, "spam")

    assert client_for(staff_user).delete(message_url(message)).status_code == 200
    assert fresh(message).deleted is True


def test_a_plain_member_may_not_delete_anothers_message(bob_api, public_room, user):
    message = say(public_room, user, "mine")

    response = bob_api.delete(message_url(message))

    assert response.status_code == 403
    assert fresh(message).deleted is False


def test_deleting_a_message_of_an_unseen_private_room_is_404(carol_api, private_room, user):
    message = say(private_room, user, "in the hideout")

    response = carol_api.delete(message_url(message))

    assert response.status_code == 404
    assert fresh(message).deleted is False


# ---------------------------------------------------------------------- reactions


def test_member_reacts_and_sees_the_summary(bob_api, alice_api, public_room, user, other_user):
    message = say(public_room, user, "react to me")
    add_reaction(message=message, user=user, emoji="👍")

    response = bob_api.post(message_url(message, "reactions/"), {"emoji": "👍"}, format="json")

    assert response.status_code == 201
    assert response.json()["reactions"] == [
        {"emoji": "👍", "count": 2, "user_ids": [user.pk, other_user.pk], "me": True}
    ]
    assert response.json()["pos"] == room_pos(public_room)
    carol = UserFactory(username="carol")
    add_member(fresh(public_room), carol)
    seen_by_carol = client_for(carol).get(f"{ROOMS}{public_room.pk}/messages/").json()
    [shown] = [m for m in seen_by_carol["results"] if m["id"] == message.pk]
    assert shown["reactions"] == [
        {"emoji": "👍", "count": 2, "user_ids": [user.pk, other_user.pk], "me": False}
    ]


def test_reacting_twice_is_200_and_takes_no_position(bob_api, public_room, user):
    message = say(public_room, user, "react to me")
    assert bob_api.post(message_url(message, "reactions/"), {"emoji": "🎉"}).status_code == 201
    before = room_pos(public_room)

    response = bob_api.post(message_url(message, "reactions/"), {"emoji": "🎉"}, format="json")

    assert response.status_code == 200
    assert response.json()["reactions"][0]["count"] == 1
    assert room_pos(public_room) == before


def test_removing_a_reaction(bob_api, public_room, user, other_user):
    message = say(public_room, user, "react to me")
    add_reaction(message=message, user=other_user, emoji="👍")
    before = room_pos(public_room)

    response = bob_api.delete(reaction_url(message, "👍"))

    assert response.status_code == 200
    assert response.json()["reactions"] == []
    assert room_pos(public_room) == before + 1


def test_removing_an_absent_reaction_takes_no_position(bob_api, public_room, user):
    message = say(public_room, user, "react to me")
    before = room_pos(public_room)

    response = bob_api.delete(reaction_url(message, "👍"))

    assert response.status_code == 200
    assert room_pos(public_room) == before


def test_non_member_of_a_public_room_may_not_react(carol_api, public_room, user):
    message = say(public_room, user, "members only")

    response = carol_api.post(message_url(message, "reactions/"), {"emoji": "👍"}, format="json")

    assert response.status_code == 403
    assert fresh(message).reaction_set.count() == 0
    assert carol_api.delete(reaction_url(message, "👍")).status_code == 403


def test_outsider_reacting_in_a_private_room_gets_404(carol_api, private_room, user):
    message = say(private_room, user, "secret")

    response = carol_api.post(message_url(message, "reactions/"), {"emoji": "👍"}, format="json")

    assert response.status_code == 404
    assert fresh(message).reaction_set.count() == 0


@pytest.mark.parametrize("emoji", ["", "x" * 17, " "])
def test_bad_emoji_is_400(bob_api, public_room, user, emoji):
    message = say(public_room, user, "react to me")

    response = bob_api.post(message_url(message, "reactions/"), {"emoji": emoji}, format="json")

    assert response.status_code == 400
    assert fresh(message).reaction_set.count() == 0


def test_reacting_to_a_deleted_message_is_404(bob_api, public_room, user):
    message = say(public_room, user, "gone soon")
    delete_message(message=message, actor=user, can_moderate=False)

    response = bob_api.post(message_url(message, "reactions/"), {"emoji": "👍"}, format="json")

    assert response.status_code == 404


# ------------------------------------------------------------------------- search


def test_search_finds_a_message_by_a_word(alice_api, public_room, user, other_user):
    wanted = say(public_room, other_user, "the pineapple pizza debate")
    say(public_room, other_user, "something else entirely")

    assert found_ids(alice_api, q="pineapple") == [wanted.pk]


def test_search_never_shows_a_private_room_the_user_is_not_in(
    carol_api, alice_api, private_room, public_room, user
):
    secret = say(private_room, user, "the marmalade plan")
    public = say(public_room, user, "marmalade for everyone")

    assert found_ids(carol_api, q="marmalade") == [public.pk]
    assert set(found_ids(alice_api, q="marmalade")) == {secret.pk, public.pk}


def test_search_in_a_room_the_user_cannot_read_is_404(carol_api, private_room, user):
    say(private_room, user, "the marmalade plan")

    response = carol_api.get(SEARCH, {"q": "marmalade", "room": private_room.pk})

    assert response.status_code == 404
    assert "marmalade" not in response.content.decode()


def test_search_in_one_room(alice_api, public_room, private_room, user):
    here = say(public_room, user, "walrus here")
    say(private_room, user, "walrus there")

    assert found_ids(alice_api, q="walrus", room=public_room.pk) == [here.pk]


def test_search_never_finds_a_deleted_message(alice_api, public_room, user):
    kept = say(public_room, user, "zeppelin one")
    gone = say(public_room, user, "zeppelin two")
    delete_message(message=gone, actor=user, can_moderate=False)

    assert found_ids(alice_api, q="zeppelin") == [kept.pk]


def test_search_never_finds_system_messages(alice_api, public_room, user, carol):
    join_room(room=public_room, user=carol)
    notice = Message.objects.get(room=public_room, type=Message.Type.SYSTEM)
    assert "joined" in notice.content

    assert found_ids(alice_api, q="joined") == []


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}])
def test_search_without_q_is_400(alice_api, user, params):
    assert alice_api.get(SEARCH, params).status_code == 400


def test_search_pages_with_next_links(alice_api, public_room, user):
    said = {say(public_room, user, f"kumquat number {n}").pk for n in range(5)}

    seen: list[int] = []
    pages = 0
    url, params = SEARCH, {"q": "kumquat", "limit": 2}
    while url is not None:
        pages += 1
        assert pages <= 5, "the next links never end"
        response = alice_api.get(url, params)
        assert response.status_code == 200
        body = response.json()
        assert len(body["results"]) <= 2
        seen.extend(m["id"] for m in body["results"])
        url, params = body["next"], None

    assert pages == 3
    assert sorted(seen) == sorted(said)
    assert len(seen) == len(set(seen))


# -------------------------------------------------------------------- attachments


def test_upload_answers_the_attachment(alice_api, user):
    response = upload(alice_api, "photo.png", PNG, content_type="image/png")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "url", "name", "size", "content_type"}
    assert body["name"] == "photo.png"
    assert body["size"] == len(PNG)
    assert body["content_type"] == "image/png"
    assert body["url"] == f"/api/attachments/{body['id']}/file/"


def test_an_unused_upload_is_served_to_its_uploader_only(alice_api, bob_api, user, other_user):
    body = upload(alice_api, "notes.txt", b"just notes\n").json()

    status, content, response = fetch_file(alice_api, body["url"])
    assert status == 200
    assert content == b"just notes\n"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert fetch_file(bob_api, body["url"])[0] == 404


def test_attachment_in_a_private_room_is_served_to_members_only(
    alice_api, bob_api, carol_api, private_room, user
):
    body = upload(alice_api, "plan.txt", b"the plan\n").json()
    response = alice_api.post(
        f"{ROOMS}{private_room.pk}/messages/",
        {"content": "see attached", "attachments": [body["id"]]},
        format="json",
    )
    assert response.status_code == 201
    assert [a["id"] for a in response.json()["attachments"]] == [body["id"]]

    assert fetch_file(alice_api, body["url"])[:2] == (200, b"the plan\n")
    assert fetch_file(bob_api, body["url"])[:2] == (200, b"the plan\n")
    assert fetch_file(carol_api, body["url"])[0] == 404


def test_attachment_of_a_deleted_message_is_no_longer_served(alice_api, bob_api, public_room, user):
    body = upload(alice_api, "plan.txt", b"the plan\n").json()
    posted = alice_api.post(
        f"{ROOMS}{public_room.pk}/messages/", {"attachments": [body["id"]]}, format="json"
    )
    assert posted.status_code == 201
    assert fetch_file(bob_api, body["url"])[0] == 200

    assert alice_api.delete(f"/api/messages/{posted.json()['id']}/").status_code == 200

    assert fetch_file(bob_api, body["url"])[0] == 404


def test_a_file_named_png_that_is_not_one_is_not_served_as_an_image(alice_api, user):
    body = upload(alice_api, "x.png", b"<html><script>alert(1)</script>", "image/png").json()
    assert not body["content_type"].startswith("image/")

    status, _, response = fetch_file(alice_api, body["url"])

    assert status == 200
    assert not response["Content-Type"].startswith("image/")
    assert response["Content-Disposition"].startswith("attachment")


def test_a_real_png_is_served_inline_as_an_image(alice_api, user):
    body = upload(alice_api, "cat.bin", PNG).json()

    status, content, response = fetch_file(alice_api, body["url"])

    assert status == 200
    assert content == PNG
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline")


def test_oversized_upload_is_413(settings, alice_api, user):
    settings.MAX_UPLOAD_MB = 1

    response = upload(alice_api, "big.bin", b"\x00" * (2 * 1024 * 1024))

    assert response.status_code == 413
    assert not Attachment.objects.exists()


def test_uploads_beyond_the_quota_are_413_quota_exceeded_until_one_is_sent(
    settings, alice_api, public_room, user
):
    settings.UPLOAD_QUOTA_MB = 1
    first = upload(alice_api, "a.bin", b"\x01" * (700 * 1024))
    assert first.status_code == 201

    refused = upload(alice_api, "b.bin", b"\x01" * (700 * 1024))

    assert refused.status_code == 413
    assert refused.json()["code"] == "quota_exceeded"
    assert Attachment.objects.count() == 1
    posted = alice_api.post(
        f"{ROOMS}{public_room.pk}/messages/", {"attachments": [first.json()["id"]]}, format="json"
    )
    assert posted.status_code == 201
    assert upload(alice_api, "b.bin", b"\x01" * (700 * 1024)).status_code == 201


def test_empty_upload_is_400(alice_api, user):
    response = upload(alice_api, "empty.txt", b"")

    assert response.status_code == 400
    assert not Attachment.objects.exists()


def test_upload_without_a_file_is_400(alice_api, user):
    assert alice_api.post(ATTACHMENTS, {}, format="multipart").status_code == 400


def test_posting_someone_elses_attachment_is_400(bob_api, public_room, user, other_user):
    alices = store_attachment(
        uploader=user, upload=SimpleUploadedFile("a.txt", b"alice's", content_type="text/plain")
    )
    before = room_pos(public_room)

    response = bob_api.post(
        f"{ROOMS}{public_room.pk}/messages/",
        {"content": "look", "attachments": [alices.pk]},
        format="json",
    )

    assert response.status_code == 400
    assert fresh(alices).message is None
    assert room_pos(public_room) == before


def test_an_attachment_goes_into_one_message_only(alice_api, public_room, user):
    body = upload(alice_api, "a.txt", b"once").json()
    first = alice_api.post(
        f"{ROOMS}{public_room.pk}/messages/", {"attachments": [body["id"]]}, format="json"
    )
    assert first.status_code == 201

    second = alice_api.post(
        f"{ROOMS}{public_room.pk}/messages/",
        {"content": "again", "attachments": [body["id"]]},
        format="json",
    )

    assert second.status_code == 400
    assert Attachment.objects.get(pk=body["id"]).message_id == first.json()["id"]


# ------------------------------------------------------------------- direct rooms


def test_direct_room_is_created_then_found(alice_api, bob_api, user, other_user):
    created = alice_api.post(DIRECT, {"user_id": other_user.pk}, format="json")
    again = alice_api.post(DIRECT, {"user_id": other_user.pk}, format="json")
    from_bob = bob_api.post(DIRECT, {"user_id": user.pk}, format="json")

    assert created.status_code == 201
    assert again.status_code == 200
    assert from_bob.status_code == 200
    assert created.json()["id"] == again.json()["id"] == from_bob.json()["id"]
    assert created.json()["kind"] == "direct"
    assert Room.objects.filter(kind=Room.Kind.DIRECT).count() == 1


def test_direct_room_is_listed_for_both_with_the_peer(alice_api, bob_api, user, other_user):
    room_id = alice_api.post(DIRECT, {"user_id": other_user.pk}, format="json").json()["id"]
    room = Room.objects.get(pk=room_id)

    for client, peer in ((alice_api, other_user), (bob_api, user)):
        shown = listed(client, room)
        assert shown is not None
        assert shown["kind"] == "direct"
        assert shown["peer_id"] == peer.pk
        assert shown["member_count"] == 2


def test_a_third_user_cannot_see_a_direct_room(alice_api, carol_api, user, other_user, carol):
    room_id = alice_api.post(DIRECT, {"user_id": other_user.pk}, format="json").json()["id"]
    room = Room.objects.get(pk=room_id)
    say(room, user, "just between us")

    assert carol_api.get(f"{ROOMS}{room_id}/").status_code == 404
    assert carol_api.get(f"{ROOMS}{room_id}/messages/").status_code == 404
    assert listed(carol_api, room) is None
    assert found_ids(carol_api, q="between") == []


def test_direct_room_with_an_unknown_user_is_404(alice_api, user):
    response = alice_api.post(DIRECT, {"user_id": 999999}, format="json")

    assert response.status_code == 404
    assert not Room.objects.filter(kind=Room.Kind.DIRECT).exists()


# ------------------------------------------------------------------- read markers


def test_read_marker_moves_unread_count(bob_api, public_room, user):
    said = [say(public_room, user, f"m{n}") for n in range(4)]
    assert listed(bob_api, public_room)["unread_count"] == 4

    response = bob_api.post(
        f"{ROOMS}{public_room.pk}/read/", {"message_id": said[1].pk}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {
        "room": public_room.pk,
        "last_read_seq": said[1].seq,
        "unread_count": 2,
        "mention_count": 0,
    }
    assert listed(bob_api, public_room)["unread_count"] == 2


def test_read_marker_never_moves_back(bob_api, public_room, user):
    said = [say(public_room, user, f"m{n}") for n in range(3)]
    read = f"{ROOMS}{public_room.pk}/read/"
    bob_api.post(read, {"message_id": said[2].pk}, format="json")

    response = bob_api.post(read, {"message_id": said[0].pk}, format="json")

    assert response.status_code == 200
    assert response.json()["last_read_seq"] == said[2].seq
    assert response.json()["unread_count"] == 0
    assert listed(bob_api, public_room)["unread_count"] == 0


def test_read_marker_of_a_non_member_is_403(carol_api, public_room, user):
    message = say(public_room, user, "hi")

    response = carol_api.post(
        f"{ROOMS}{public_room.pk}/read/", {"message_id": message.pk}, format="json"
    )

    assert response.status_code == 403


def test_read_marker_in_an_unseen_private_room_is_404(carol_api, private_room, user):
    message = say(private_room, user, "hi")

    response = carol_api.post(
        f"{ROOMS}{private_room.pk}/read/", {"message_id": message.pk}, format="json"
    )

    assert response.status_code == 404


# -------------------------------------------------------------------------- stats


STATS_FIELDS = {
    "connections",
    "online_users",
    "rooms",
    "messages",
    "messages_last_minute",
    "uptime_seconds",
}


def test_stats_for_a_user_without_per_process_figures(alice_api, public_room, user, carol):
    say(public_room, user, "one")
    join_room(room=public_room, user=carol)  # a stored system notice
    say(public_room, user, "two")

    response = alice_api.get(STATS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == STATS_FIELDS
    assert body["rooms"] == Room.objects.count()
    assert body["messages"] == 2  # system notices are not counted
    assert body["messages_last_minute"] == 2
    assert body["uptime_seconds"] >= 0
    assert "processes" not in body


def test_stats_for_staff_include_processes(staff_user):
    response = client_for(staff_user).get(STATS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= STATS_FIELDS
    assert isinstance(body["processes"], list)
    assert len(body["processes"]) >= 1
    assert {"process", "connections", "uptime_seconds"} <= set(body["processes"][0])


def test_stats_need_a_token(api):
    assert api.get(STATS).status_code == 401


# ---------------------------------------------------------- room list query count


def test_room_list_with_unread_counts_takes_a_bounded_number_of_queries(
    alice_api, user, other_user, django_assert_max_num_queries
):
    expected = {}
    for n in range(30):
        room = make_room(owner=other_user, name=f"busy {n:02}")
        add_member(fresh(room), user)
        said = [say(room, other_user, f"hello {n}.{k}") for k in range(n % 3 + 1)]
        if n % 5 == 0:
            delete_message(message=said[0], actor=other_user, can_moderate=True)
        expected[room.pk] = len(said) - (1 if n % 5 == 0 else 0)
    mine = make_room(owner=user, name="quiet")
    say(mine, user, "my own words are never unread")
    expected[mine.pk] = 0

    with django_assert_max_num_queries(5):
        response = alice_api.get(ROOMS, {"limit": 100})

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 31
    assert {r["id"]: r["unread_count"] for r in results} == expected
    assert all(r["my_role"] in ("member", "owner") for r in results)
    assert Membership.objects.filter(user=user).count() == 31


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL unset)")
def test_the_process_lines_in_redis_expire_when_no_process_refreshes_them():
    from messaging import stats

    stats.publish(connections=3)

    ttl = stats._redis().ttl(stats._key())
    assert 0 < ttl <= settings.PRESENCE_TTL * 4
