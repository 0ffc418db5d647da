"""post_message: the room stream's positions, the broadcast after commit, idempotency,
and both under concurrent writers (SQLite and PostgreSQL alike)."""

import threading
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.utils import timezone

from chatproject.errors import Forbidden, TooLong, ValidationFailed
from messaging.models import Message
from messaging.posting import post_message
from rooms.models import Room
from rooms.services import update_room
from tests.factories import UserFactory, add_member, make_room

THREADS = 8
PER_THREAD = 10


@pytest.fixture
def room(user, other_user) -> Room:
    room = make_room(owner=user, name="Stream")
    room.refresh_from_db()
    add_member(room, other_user)
    return room


def positions(room: Room) -> list[tuple[int, int]]:
    return list(Message.objects.filter(room=room).order_by("seq").values_list("seq", "pos"))


def run_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    """Run `target(i)` in `count` threads started together; answer their exceptions.

    Each thread closes its own database connection at its end (it is not the test's).
    """
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            target(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer thread hung"
    return errors


# --------------------------------------------------------------------- positions


@pytest.mark.django_db
def test_positions_run_from_one_without_gaps_and_seq_equals_pos(room, user, other_user):
    authors = [user, other_user] * 3

    messages = [
        post_message(room=room, author=author, content=f"m{n}")[0]
        for n, author in enumerate(authors)
    ]

    assert [m.seq for m in messages] == [1, 2, 3, 4, 5, 6]
    assert all(m.pos == m.seq for m in messages)
    assert positions(room) == [(n, n) for n in range(1, 7)]


@pytest.mark.django_db
def test_post_message_advances_the_room_position_and_last_message_at(room, user):
    assert room.pos == 0
    assert room.last_message_at is None
    before = timezone.now()

    message, created = post_message(room=room, author=user, content="hi")

    room.refresh_from_db()
    assert created is True
    assert room.pos == message.seq == 1
    assert room.last_message_at is not None
    assert before <= room.last_message_at <= timezone.now()


@pytest.mark.django_db
def test_system_messages_share_the_stream_with_chat(room, user):
    post_message(room=room, author=user, content="before")
    update_room(room=room, actor=user, name="Renamed Stream")
    after, _ = post_message(room=room, author=user, content="after")

    assert after.seq == 3
    assert list(Message.objects.filter(room=room).order_by("seq").values_list("type", "seq")) == [
        ("text", 1),
        ("system", 2),
        ("text", 3),
    ]


# -------------------------------------------------------------------- broadcasts


@pytest.mark.django_db
def test_message_is_broadcast_to_the_room_only_after_commit(broadcasts, committing, room, user):
    with committing():
        message, _ = post_message(room=room, author=user, content="hello", client_id="b-1")
        assert broadcasts == []

    [(group, event)] = broadcasts
    assert group == f"room.{room.pk}"
    assert event["type"] == "message"
    assert event["room"] == room.pk
    assert event["pos"] == message.pos == 1
    assert event["message"]["id"] == message.pk
    assert event["message"]["content"] == "hello"
    assert event["message"]["client_id"] == "b-1"
    assert event["message"]["sender"]["id"] == user.pk


@pytest.mark.django_db
def test_nothing_is_broadcast_when_the_surrounding_transaction_rolls_back(
    broadcasts, committing, room, user
):
    with committing(), pytest.raises(RuntimeError), transaction.atomic():
        post_message(room=room, author=user, content="never seen")
        raise RuntimeError("the request failed after posting")

    assert broadcasts == []
    assert not Message.objects.filter(room=room).exists()
    room.refresh_from_db()
    assert room.pos == 0


@pytest.mark.django_db(transaction=True)
def test_broadcast_waits_for_the_real_commit(broadcasts, user, other_user):
    room = make_room(owner=user, name="Committed")

    with transaction.atomic():
        message, _ = post_message(room=room, author=user, content="wait for it")
        assert broadcasts == []

    [(group, event)] = broadcasts
    assert group == f"room.{room.pk}"
    assert event["message"]["id"] == message.pk


@pytest.mark.django_db
def test_refused_messages_are_not_broadcast(broadcasts, committing, room, user):
    with committing():
        with pytest.raises(ValidationFailed):
            post_message(room=room, author=user, content="   ")
        with pytest.raises(Forbidden):
            post_message(room=room, author=user, content="x", type=Message.Type.SYSTEM)

    assert broadcasts == []
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_archived_room_refuses_messages(room, user):
    update_room(room=room, actor=user, is_archived=True)
    count = Message.objects.count()

    with pytest.raises(Forbidden):
        post_message(room=room, author=user, content="late")

    assert Message.objects.count() == count


@pytest.mark.django_db
def test_too_long_content_is_refused_before_anything_is_stored(room, user, settings):
    settings.MAX_MESSAGE_LENGTH = 5

    with pytest.raises(TooLong):
        post_message(room=room, author=user, content="😀" * 6)
    message, _ = post_message(room=room, author=user, content="😀" * 5)

    assert message.seq == 1
    assert Message.objects.count() == 1


# ------------------------------------------------------------------- idempotency


@pytest.mark.django_db
def test_same_client_id_returns_the_same_message_and_is_not_broadcast_again(
    broadcasts, committing, room, user
):
    with committing():
        first, created_first = post_message(room=room, author=user, content="x", client_id="k1")
        again, created_again = post_message(room=room, author=user, content="x", client_id="k1")

    assert (created_first, created_again) == (True, False)
    assert again.pk == first.pk
    assert Message.objects.filter(room=room).count() == 1
    room.refresh_from_db()
    assert room.pos == 1
    assert len(broadcasts) == 1


@pytest.mark.django_db
def test_a_retry_with_different_content_still_returns_the_first_message(room, user):
    first, _ = post_message(room=room, author=user, content="original", client_id="k2")

    again, created = post_message(room=room, author=user, content="changed", client_id="k2")

    assert created is False
    assert again.pk == first.pk
    assert again.content == "original"


@pytest.mark.django_db
def test_same_client_id_in_another_room_is_refused(room, user):
    other = make_room(owner=user, name="Other Stream")
    post_message(room=room, author=user, content="here", client_id="k3")

    with pytest.raises(ValidationFailed):
        post_message(room=other, author=user, content="there", client_id="k3")

    assert not Message.objects.filter(room=other).exists()


@pytest.mark.django_db
def test_client_ids_are_scoped_to_the_sender(room, user, other_user):
    mine, _ = post_message(room=room, author=user, content="a", client_id="shared")
    theirs, created = post_message(room=room, author=other_user, content="b", client_id="shared")

    assert created is True
    assert theirs.pk != mine.pk


# ------------------------------------------------------------------- concurrency


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_every_position_exactly_once(broadcasts):
    authors = [UserFactory() for _ in range(THREADS)]
    room = make_room(owner=authors[0], name="Rush Hour")
    room.refresh_from_db()
    for author in authors[1:]:
        add_member(room, author)
    created: list[bool] = []

    def write(i: int) -> None:
        for n in range(PER_THREAD):
            _, was_created = post_message(
                room=room, author=authors[i], content=f"{i}:{n}", client_id=f"t{i}-{n}"
            )
            created.append(was_created)

    errors = run_threads(THREADS, write)

    assert errors == []
    total = THREADS * PER_THREAD
    assert created == [True] * total
    room.refresh_from_db()
    assert room.pos == total
    assert positions(room) == [(n, n) for n in range(1, total + 1)]
    # Each writer's own messages keep the order in which it sent them.
    for i in range(THREADS):
        seqs = [
            Message.objects.get(room=room, client_id=f"t{i}-{n}").seq for n in range(PER_THREAD)
        ]
        assert seqs == sorted(seqs)
    # Every message was broadcast once, after its commit.
    assert sorted(event["pos"] for _, event in broadcasts) == list(range(1, total + 1))


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_client_id_store_one_message(broadcasts):
    author = UserFactory()
    room = make_room(owner=author, name="Flaky Network")
    results: list[tuple[int, bool]] = []

    def retry(i: int) -> None:
        message, created = post_message(
            room=room, author=author, content="only once", client_id="same-key"
        )
        results.append((message.pk, created))

    errors = run_threads(THREADS, retry)

    assert errors == []
    stored = list(Message.objects.filter(room=room))
    assert len(stored) == 1
    assert len(results) == THREADS
    assert {pk for pk, _ in results} == {stored[0].pk}
    assert sum(created for _, created in results) == 1
    room.refresh_from_db()
    assert room.pos == 1
    assert len(broadcasts) == 1


def test_posting_and_serializing_a_message_asks_the_database_only_to_store_it(
    general, user, django_assert_max_num_queries
):
    from messaging.serializers import MessageSerializer
    from tests.factories import add_member

    add_member(general, user)
    # Lock the room, look for a retry, advance the position, insert: and the event and the
    # answer are built without asking for reactions or files (a new message has none).
    with django_assert_max_num_queries(6) as captured:  # 4, and two savepoints
        message, created = post_message(room=general, author=user, content="fast")
        MessageSerializer(message).data  # noqa: B018 (the serializer's work is the test)
    assert created
    statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 4, statements
