"""Services of the live features: edits, deletes, restores, reactions, attachments,
direct rooms and read markers. Each test checks what is stored, the room position, and
what is broadcast once the transaction commits."""

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections, transaction

from chatproject import throttle
from chatproject.errors import ChatError, Forbidden, QuotaExceeded, RateLimited, ValidationFailed
from messaging.attachments import (
    UploadTooLarge,
    attachments_for_message,
    store_attachment,
    sweep_unused_uploads,
)
from messaging.changes import (
    add_reaction,
    delete_message,
    edit_message,
    purge_messages,
    remove_reaction,
    restore_message,
)
from messaging.models import Attachment, Message, Reaction
from messaging.posting import post_message
from rooms.models import Membership, Room
from rooms.selectors import can_moderate, unread_count
from rooms.services import get_or_create_direct_room, mark_read
from tests.factories import UserFactory, add_member, make_room

pytestmark = pytest.mark.django_db

Role = Membership.Role

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 32


@pytest.fixture(autouse=True)
def _fast_and_tidy(settings, tmp_path):
    """Uploads go to a directory of this test, not the checkout's `media/`; users are
    made with a fast password hash (these tests never log in)."""
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def room(user, other_user) -> Room:
    """A public room owned by alice, with bob as a member."""
    room = make_room(owner=user, name="Live")
    add_member(fresh(room), other_user)
    return fresh(room)


@pytest.fixture
def said(room, user) -> Message:
    """A message of alice's in the room."""
    message, _ = post_message(room=room, author=user, content="hello there")
    return message


def fresh(obj):
    obj.refresh_from_db()
    return obj


def room_pos(room: Room) -> int:
    return Room.objects.values_list("pos", flat=True).get(pk=room.pk)


def upload(name: str, content: bytes, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, content, content_type=content_type)


# -------------------------------------------------------------------------- edit


def test_author_edits_and_the_edit_takes_the_next_position(
    broadcasts, committing, room, said, user
):
    before = room_pos(room)

    with committing():
        edited = edit_message(message=said, editor=user, content="hello, edited")

    stored = fresh(said)
    assert stored.content == "hello, edited"
    assert stored.edited_at is not None
    assert stored.seq == said.seq
    assert stored.pos == before + 1 == room_pos(room)
    assert edited.pos == stored.pos
    [(group, event)] = broadcasts
    assert group == f"room.{room.pk}"
    assert event["type"] == "message_updated"
    assert event["room"] == room.pk
    assert event["pos"] == stored.pos
    assert event["message"]["id"] == said.pk
    assert event["message"]["content"] == "hello, edited"
    assert event["message"]["pos"] == stored.pos
    assert event["message"]["seq"] == said.seq
    assert event["message"]["edited_at"] is not None


@pytest.mark.parametrize("editor_kind", ["member", "owner", "staff"])
def test_only_the_author_may_edit(
    broadcasts, committing, room, other_user, staff_user, editor_kind
):
    """Moderators may delete a message, never put words in its author's mouth."""
    bobs, _ = post_message(room=room, author=other_user, content="bob's words")
    editor = {"member": UserFactory(), "owner": room.created_by, "staff": staff_user}[editor_kind]
    if editor_kind == "member":
        add_member(fresh(room), editor)
    before = room_pos(room)

    with committing(), pytest.raises(Forbidden) as caught:
        edit_message(message=bobs, editor=editor, content="not bob's words")

    assert caught.value.code == "forbidden"
    assert fresh(bobs).content == "bob's words"
    assert fresh(bobs).edited_at is None
    assert room_pos(room) == before
    assert broadcasts == []


@pytest.mark.parametrize("content", ["", "   ", "\n\t"])
def test_blank_edit_is_a_validation_error(broadcasts, committing, room, said, user, content):
    before = room_pos(room)

    with committing(), pytest.raises(ValidationFailed) as caught:
        edit_message(message=said, editor=user, content=content)

    assert caught.value.code == "validation_error"
    assert fresh(said).content == "hello there"
    assert room_pos(room) == before
    assert broadcasts == []


def test_edit_over_the_length_limit_is_too_long(settings, room, said, user):
    settings.MAX_MESSAGE_LENGTH = 10

    with pytest.raises(ValidationFailed) as caught:
        edit_message(message=said, editor=user, content="x" * 11)

    assert caught.value.code == "too_long"
    assert fresh(said).content == "hello there"


def test_edit_to_the_same_content_changes_nothing(broadcasts, committing, room, said, user):
    before = room_pos(room)

    with committing():
        edit_message(message=said, editor=user, content="hello there")

    assert fresh(said).edited_at is None
    assert room_pos(room) == before
    assert broadcasts == []


def test_a_deleted_message_cannot_be_edited(room, said, user):
    delete_message(message=said, actor=user, can_moderate=False)
    before = room_pos(room)

    with pytest.raises(ChatError) as caught:
        edit_message(message=said, editor=user, content="back from the dead")

    assert caught.value.code == "not_found"
    assert room_pos(room) == before


# ------------------------------------------------------------------------ delete


def test_author_soft_deletes_and_the_delete_takes_the_next_position(
    broadcasts, committing, room, said, user
):
    before = room_pos(room)

    with committing():
        delete_message(message=said, actor=user, can_moderate=can_moderate(room=room, user=user))

    stored = Message.objects.get(pk=said.pk)  # still there: a soft delete
    assert stored.deleted is True
    assert stored.deleted_at is not None
    assert stored.seq == said.seq
    assert stored.pos == before + 1 == room_pos(room)
    assert broadcasts == [
        (
            f"room.{room.pk}",
            {"type": "message_deleted", "room": room.pk, "pos": stored.pos, "message_id": said.pk},
        )
    ]


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_room_owner_or_admin_may_delete_anyones_message(
    broadcasts, committing, room, other_user, role
):
    moderator = UserFactory()
    add_member(fresh(room), moderator, role=role)
    bobs, _ = post_message(room=room, author=other_user, content="spam")

    assert can_moderate(room=room, user=moderator) is True
    with committing():
        delete_message(
            message=bobs, actor=moderator, can_moderate=can_moderate(room=room, user=moderator)
        )

    assert fresh(bobs).deleted is True
    assert [event["type"] for _, event in broadcasts] == ["message_deleted"]


def test_staff_may_delete_in_a_room_they_are_not_in(broadcasts, committing, room, said, staff_user):
    assert can_moderate(room=room, user=staff_user) is True
    with committing():
        delete_message(
            message=said, actor=staff_user, can_moderate=can_moderate(room=room, user=staff_user)
        )

    assert fresh(said).deleted is True
    assert [event["type"] for _, event in broadcasts] == ["message_deleted"]


def test_a_plain_member_may_not_delete_anothers_message(
    broadcasts, committing, room, said, other_user
):
    assert can_moderate(room=room, user=other_user) is False
    before = room_pos(room)

    with committing(), pytest.raises(Forbidden):
        delete_message(
            message=said, actor=other_user, can_moderate=can_moderate(room=room, user=other_user)
        )

    assert fresh(said).deleted is False
    assert room_pos(room) == before
    assert broadcasts == []


def test_deleting_twice_changes_nothing_the_second_time(broadcasts, committing, room, said, user):
    delete_message(message=said, actor=user, can_moderate=False)
    before = room_pos(room)

    with committing():
        delete_message(message=said, actor=user, can_moderate=False)

    assert room_pos(room) == before
    assert broadcasts == []


def test_rest_shows_a_deleted_message_without_content_or_attachments(
    alice_api, room, user, other_user
):
    attachment = store_attachment(uploader=user, upload=upload("cat.png", PNG))
    message, _ = post_message(
        room=room,
        author=user,
        content="secret words",
        attachments=[attachment],
        attachment_urls=["https://example.com/x"],
    )
    add_reaction(message=message, user=other_user, emoji="👍")

    delete_message(message=message, actor=user, can_moderate=False)

    response = alice_api.get(f"/api/rooms/{room.pk}/messages/", {"after": 0})
    assert response.status_code == 200
    [shown] = [m for m in response.json()["results"] if m["id"] == message.pk]
    assert shown["deleted"] is True
    assert shown["content"] == ""
    assert shown["attachments"] == []
    assert "secret words" not in response.content.decode()
    assert Message.objects.get(pk=message.pk).content == "secret words"  # kept for moderation


# ----------------------------------------------------------------------- restore


def test_restore_brings_the_message_back_at_the_next_position(
    broadcasts, committing, room, said, user
):
    delete_message(message=said, actor=user, can_moderate=False)
    before = room_pos(room)

    with committing():
        restore_message(message=said)

    stored = fresh(said)
    assert stored.deleted is False
    assert stored.deleted_at is None
    assert stored.pos == before + 1 == room_pos(room)
    [(group, event)] = broadcasts
    assert group == f"room.{room.pk}"
    assert event["type"] == "message_updated"
    assert event["pos"] == stored.pos
    assert event["message"]["content"] == "hello there"
    assert event["message"]["deleted"] is False


def test_restoring_a_message_that_is_not_deleted_changes_nothing(
    broadcasts, committing, room, said
):
    before = room_pos(room)

    with committing():
        restore_message(message=said)

    assert room_pos(room) == before
    assert broadcasts == []


# --------------------------------------------------------------------- reactions


def test_add_reaction_takes_the_next_position_and_broadcasts(
    broadcasts, committing, room, said, other_user
):
    before = room_pos(room)

    with committing():
        added = add_reaction(message=said, user=other_user, emoji="👍")

    assert added is True
    assert Reaction.objects.filter(message=said, user=other_user, emoji="👍").count() == 1
    assert fresh(said).pos == before + 1 == room_pos(room)
    assert broadcasts == [
        (
            f"room.{room.pk}",
            {
                "type": "reaction_added",
                "room": room.pk,
                "pos": before + 1,
                "message_id": said.pk,
                "emoji": "👍",
                "user_id": other_user.pk,
            },
        )
    ]


def test_adding_the_same_reaction_twice_changes_nothing(
    broadcasts, committing, room, said, other_user
):
    add_reaction(message=said, user=other_user, emoji="👍")
    before = room_pos(room)

    with committing():
        again = add_reaction(message=said, user=other_user, emoji="👍")

    assert again is False
    assert Reaction.objects.filter(message=said).count() == 1
    assert room_pos(room) == before
    assert fresh(said).pos == before
    assert broadcasts == []


def test_two_users_same_emoji_are_two_reactions(room, said, user, other_user):
    assert add_reaction(message=said, user=user, emoji="🎉") is True
    assert add_reaction(message=said, user=other_user, emoji="🎉") is True

    assert Reaction.objects.filter(message=said, emoji="🎉").count() == 2


def test_remove_reaction_takes_the_next_position_and_broadcasts(
    broadcasts, committing, room, said, other_user
):
    add_reaction(message=said, user=other_user, emoji="👍")
    before = room_pos(room)

    with committing():
        removed = remove_reaction(message=said, user=other_user, emoji="👍")

    assert removed is True
    assert not Reaction.objects.filter(message=said).exists()
    assert fresh(said).pos == before + 1 == room_pos(room)
    assert [event for _, event in broadcasts] == [
        {
            "type": "reaction_removed",
            "room": room.pk,
            "pos": before + 1,
            "message_id": said.pk,
            "emoji": "👍",
            "user_id": other_user.pk,
        }
    ]


def test_removing_an_absent_reaction_changes_nothing(
    broadcasts, committing, room, said, user, other_user
):
    add_reaction(message=said, user=user, emoji="👍")  # someone else's stays
    before = room_pos(room)

    with committing():
        removed = remove_reaction(message=said, user=other_user, emoji="👍")

    assert removed is False
    assert Reaction.objects.filter(message=said, user=user).count() == 1
    assert room_pos(room) == before
    assert broadcasts == []


@pytest.mark.parametrize(
    "emoji",
    ["", "x" * 17, " ", "👍 👍", "\t", "a\nb", "\x00", "👍\u200d 👍", "\u200d\n"],
    ids=[
        "empty",
        "17-chars",
        "space",
        "inner-space",
        "tab",
        "newline",
        "nul",
        "joiner-and-space",
        "joiner-and-newline",
    ],
)
def test_bad_emoji_is_a_validation_error(broadcasts, committing, room, said, other_user, emoji):
    before = room_pos(room)

    with committing(), pytest.raises(ValidationFailed) as caught:
        add_reaction(message=said, user=other_user, emoji=emoji)

    assert caught.value.code == "validation_error"
    assert not Reaction.objects.exists()
    assert room_pos(room) == before
    assert broadcasts == []


@pytest.mark.parametrize("emoji", ["x" * 16, "👍🏽", "👨‍👩‍👧", "+1"])
def test_emoji_up_to_16_characters_is_accepted(room, said, other_user, emoji):
    assert add_reaction(message=said, user=other_user, emoji=emoji) is True
    assert Reaction.objects.get(message=said).emoji == emoji


def test_removing_with_a_bad_emoji_is_a_validation_error(room, said, other_user):
    with pytest.raises(ValidationFailed):
        remove_reaction(message=said, user=other_user, emoji="")


def test_reacting_to_a_deleted_message_is_not_found(
    broadcasts, committing, room, said, user, other_user
):
    delete_message(message=said, actor=user, can_moderate=False)
    before = room_pos(room)

    with committing():
        with pytest.raises(ChatError) as added:
            add_reaction(message=said, user=other_user, emoji="👍")
        with pytest.raises(ChatError) as removed:
            remove_reaction(message=said, user=other_user, emoji="👍")

    assert added.value.code == removed.value.code == "not_found"
    assert added.value.status == 404
    assert not Reaction.objects.exists()
    assert room_pos(room) == before
    assert broadcasts == []


# ------------------------------------------------------------------- attachments


def test_store_attachment_keeps_the_file_for_its_uploader(user):
    attachment = store_attachment(uploader=user, upload=upload("notes.txt", b"some notes\n"))

    assert attachment.uploader_id == user.pk
    assert attachment.message is None
    assert attachment.name == "notes.txt"
    assert attachment.size == len(b"some notes\n")
    assert attachment.content_type == "text/plain"
    with attachment.file.open("rb") as f:
        assert f.read() == b"some notes\n"


def test_an_empty_file_is_refused_with_400(user):
    with pytest.raises(ValidationFailed) as caught:
        store_attachment(uploader=user, upload=upload("empty.txt", b""))

    assert caught.value.status == 400
    assert not Attachment.objects.exists()


def test_a_file_over_max_upload_mb_is_too_large(settings, user):
    settings.MAX_UPLOAD_MB = 1

    with pytest.raises(UploadTooLarge) as caught:
        store_attachment(uploader=user, upload=upload("big.bin", b"\x00" * (2 * 1024 * 1024)))

    assert caught.value.status == 413
    assert caught.value.code == "too_large"
    assert not Attachment.objects.exists()


def test_a_file_at_exactly_max_upload_mb_is_kept(settings, user):
    settings.MAX_UPLOAD_MB = 1

    attachment = store_attachment(uploader=user, upload=upload("edge.bin", b"\x01" * 1024 * 1024))

    assert attachment.size == 1024 * 1024


def test_a_png_is_recognised_by_its_bytes_not_its_name_or_claim(user):
    attachment = store_attachment(
        uploader=user, upload=upload("holiday.dat", PNG, content_type="text/plain")
    )

    assert attachment.content_type == "image/png"


def test_a_file_named_png_that_is_not_a_png_is_not_an_image(user):
    attachment = store_attachment(
        uploader=user,
        upload=upload("x.png", b"<script>alert(1)</script>", content_type="image/png"),
    )

    assert not attachment.content_type.startswith("image/")
    assert attachment.content_type == "application/octet-stream"


def test_a_path_in_the_file_name_is_not_kept(user):
    attachment = store_attachment(uploader=user, upload=upload("../../etc/passwd", b"root"))

    assert "/" not in attachment.name
    assert "attachments/" in attachment.file.name
    assert "passwd" not in attachment.file.name


def test_attachments_for_message_refuses_someone_elses_upload(user, other_user):
    bobs = store_attachment(uploader=other_user, upload=upload("b.txt", b"bob"))

    with pytest.raises(ValidationFailed) as caught:
        attachments_for_message(uploader=user, ids=[bobs.pk])

    assert "attachments" in caught.value.fields


def test_attachments_for_message_refuses_an_upload_already_in_a_message(room, user):
    mine = store_attachment(uploader=user, upload=upload("a.txt", b"alice"))
    post_message(room=room, author=user, content="", attachments=[mine])

    with pytest.raises(ValidationFailed):
        attachments_for_message(uploader=user, ids=[mine.pk])


def test_attachments_for_message_keeps_the_order_given(user):
    first = store_attachment(uploader=user, upload=upload("1.txt", b"1"))
    second = store_attachment(uploader=user, upload=upload("2.txt", b"2"))

    assert attachments_for_message(uploader=user, ids=[second.pk, first.pk]) == [second, first]


# ------------------------------------------------------------------ direct rooms


def test_direct_room_is_created_once_per_pair(user, other_user):
    room, created = get_or_create_direct_room(user=user, other=other_user)
    again, created_again = get_or_create_direct_room(user=user, other=other_user)
    reverse, created_reverse = get_or_create_direct_room(user=other_user, other=user)

    assert created is True
    assert (created_again, created_reverse) == (False, False)
    assert again.pk == reverse.pk == room.pk
    assert room.kind == Room.Kind.DIRECT
    assert set(Membership.objects.filter(room=room).values_list("user_id", flat=True)) == {
        user.pk,
        other_user.pk,
    }
    assert Room.objects.filter(kind=Room.Kind.DIRECT).count() == 1


def test_direct_rooms_of_different_pairs_are_different(user, other_user):
    carol = UserFactory(username="carol")

    with_bob, _ = get_or_create_direct_room(user=user, other=other_user)
    with_carol, _ = get_or_create_direct_room(user=user, other=carol)

    assert with_bob.pk != with_carol.pk


def test_a_public_room_named_like_a_direct_room_does_not_block_it(user, other_user):
    low, high = sorted((user.pk, other_user.pk))
    squatter = make_room(owner=UserFactory(), name=f"direct-{low}-{high}")

    room, created = get_or_create_direct_room(user=user, other=other_user)

    assert created is True
    assert room.pk != squatter.pk
    assert room.kind == Room.Kind.DIRECT
    assert get_or_create_direct_room(user=other_user, other=user) == (room, False)


@pytest.mark.django_db(transaction=True)
def test_concurrent_direct_room_calls_create_exactly_one_room(user, other_user):
    workers = 6
    barrier = threading.Barrier(workers)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            a, b = (user, other_user) if index % 2 else (other_user, user)
            room, created = get_or_create_direct_room(user=a, other=b)
            with lock:
                results.append((room.pk, created))
        except BaseException as exc:  # reported below, in the test's thread
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(results) == workers
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Room.objects.filter(kind=Room.Kind.DIRECT).count() == 1
    assert Membership.objects.filter(room_id=results[0][0]).count() == 2


# ------------------------------------------------------------------- read markers


def test_mark_read_moves_forward_and_unread_count_follows(room, user, other_user):
    said = [post_message(room=room, author=user, content=f"m{n}")[0] for n in range(4)]
    membership = Membership.objects.get(room=room, user=other_user)
    assert unread_count(membership=membership) == 4

    marked = mark_read(room=room, user=other_user, message_id=said[1].pk)

    assert marked.last_read_pos == said[1].seq
    assert unread_count(membership=marked) == 2


def test_mark_read_never_moves_backwards(room, user, other_user):
    said = [post_message(room=room, author=user, content=f"m{n}")[0] for n in range(3)]
    mark_read(room=room, user=other_user, message_id=said[2].pk)

    marked = mark_read(room=room, user=other_user, message_id=said[0].pk)

    assert marked.last_read_pos == said[2].seq
    assert fresh(marked).last_read_pos == said[2].seq
    assert unread_count(membership=marked) == 0


def test_unread_count_skips_own_and_deleted_messages(room, user, other_user):
    membership = Membership.objects.get(room=room, user=other_user)
    post_message(room=room, author=other_user, content="mine")
    kept, _ = post_message(room=room, author=user, content="kept")
    gone, _ = post_message(room=room, author=user, content="gone")
    delete_message(message=gone, actor=user, can_moderate=False)

    assert unread_count(membership=membership) == 1
    mark_read(room=room, user=other_user, message_id=kept.pk)
    assert unread_count(membership=fresh(membership)) == 0


def test_mark_read_by_a_non_member_is_forbidden(room, said):
    outsider = UserFactory()

    with pytest.raises(Forbidden):
        mark_read(room=room, user=outsider, message_id=said.pk)


def test_mark_read_of_a_message_of_another_room_is_not_found(room, user, other_user):
    elsewhere = make_room(owner=user, name="Elsewhere")
    foreign, _ = post_message(room=elsewhere, author=user, content="over there")
    before = Membership.objects.get(room=room, user=other_user).last_read_pos

    with pytest.raises(ChatError) as caught:
        mark_read(room=room, user=other_user, message_id=foreign.pk)

    assert caught.value.code == "not_found"
    assert Membership.objects.get(room=room, user=other_user).last_read_pos == before


@pytest.mark.django_db(transaction=True)
def test_purging_a_room_deletes_its_files_and_a_rolled_back_purge_keeps_them(user, tmp_path):
    from rooms.services import delete_room

    room = make_room(owner=user, name="Files")
    kept = store_attachment(uploader=user, upload=upload("a.txt", b"first\n"))
    post_message(room=room, author=user, content="", attachments=[kept])
    path = Path(kept.file.path)
    assert path.exists()

    with pytest.raises(RuntimeError), transaction.atomic():
        purge_messages(room=room, actor=user)
        raise RuntimeError("the purge's transaction rolls back")
    assert path.exists()

    purge_messages(room=room, actor=user)
    assert not path.exists()
    assert not Attachment.objects.exists()

    other = store_attachment(uploader=user, upload=upload("b.txt", b"second\n"))
    post_message(room=room, author=user, content="", attachments=[other])
    delete_room(room=fresh(room), actor=user)
    assert not Path(other.file.path).exists()
    unsent = store_attachment(uploader=user, upload=upload("c.txt", b"never sent\n"))
    assert Path(unsent.file.path).exists()  # an upload no message used stays its uploader's


def test_the_upload_quota_counts_only_uploads_not_yet_in_a_message(
    settings, room, user, other_user
):
    settings.UPLOAD_QUOTA_MB = 1
    half = b"\x01" * (512 * 1024)
    first = store_attachment(uploader=user, upload=upload("a.bin", half))
    store_attachment(uploader=user, upload=upload("b.bin", half))  # exactly the quota

    with pytest.raises(QuotaExceeded) as caught:
        store_attachment(uploader=user, upload=upload("c.bin", b"\x01"))

    assert (caught.value.status, caught.value.code) == (413, "quota_exceeded")
    assert Attachment.objects.filter(uploader=user).count() == 2
    store_attachment(uploader=other_user, upload=upload("bob.bin", half))  # a quota each
    # Sent in a message, an upload no longer counts.
    post_message(room=room, author=user, content="", attachments=[first])
    store_attachment(uploader=user, upload=upload("c.bin", half))


def test_the_sweep_deletes_old_unused_uploads_and_gives_the_quota_back(
    settings, room, user, django_capture_on_commit_callbacks
):
    settings.UPLOAD_QUOTA_MB = 1
    used = store_attachment(uploader=user, upload=upload("used.bin", b"\x01" * 1024))
    post_message(room=room, author=user, content="", attachments=[used])
    unused = store_attachment(uploader=user, upload=upload("big.bin", b"\x01" * 1024 * 1024))
    path = Path(unused.file.path)

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_unused_uploads(older_than=timedelta(0)) == 1

    assert list(Attachment.objects.all()) == [used]
    assert not path.exists()
    store_attachment(uploader=user, upload=upload("again.bin", b"\x01" * 1024 * 1024))


# ------------------------------------------------------------------ write budget


@pytest.fixture
def write_budget(settings):
    """`write_budget(n)`: from now on, WRITE_RATE_LIMIT is n a minute, every budget whole
    (the fixtures' writes above counted under the tests' generous default)."""

    def limit(count: int) -> None:
        settings.WRITE_RATE_LIMIT = (count, 60)
        throttle.counters().clear()

    return limit


def test_edits_deletes_and_reactions_spend_one_budget_and_a_refusal_changes_nothing(
    write_budget, broadcasts, committing, room, user, other_user
):
    write_budget(3)
    mine, _ = post_message(room=room, author=user, content="mine")
    bobs, _ = post_message(room=room, author=other_user, content="bob's")
    before = room_pos(room)

    with committing():
        edit_message(message=mine, editor=user, content="mine, edited")
        add_reaction(message=bobs, user=user, emoji="👍")
        add_reaction(message=bobs, user=user, emoji="👍")  # there already: free
        edit_message(message=mine, editor=user, content="mine, edited")  # the same: free
        remove_reaction(message=bobs, user=user, emoji="👍")
    broadcasts.clear()
    for refused in (
        lambda: edit_message(message=mine, editor=user, content="again"),
        lambda: add_reaction(message=bobs, user=user, emoji="🎉"),
        lambda: delete_message(message=mine, actor=user, can_moderate=False),
    ):
        with pytest.raises(RateLimited), committing():
            refused()

    assert broadcasts == []
    assert room_pos(room) == before + 3
    assert (fresh(mine).content, fresh(mine).deleted) == ("mine, edited", False)
    assert not Reaction.objects.exists()
    # Another user's budget is their own.
    add_reaction(message=mine, user=other_user, emoji="👍")


def test_a_refused_reaction_removal_keeps_the_reaction(write_budget, room, said, user, other_user):
    write_budget(2)
    add_reaction(message=said, user=other_user, emoji="👍")
    add_reaction(message=said, user=other_user, emoji="🎉")

    with pytest.raises(RateLimited):
        remove_reaction(message=said, user=other_user, emoji="👍")

    assert set(Reaction.objects.values_list("emoji", flat=True)) == {"👍", "🎉"}
