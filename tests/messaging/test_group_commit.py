"""Group commit: `posting.post_batch` stores the posts that arrived together with one
lock, one lookup, one position update and one insert, and answers each post as
`post_message_from_input` would have answered it alone; `writer.GroupCommit` makes the
batches out of concurrent socket posts."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError, DataError

from chatproject import throttle
from chatproject.errors import ChatError, Forbidden, RateLimited, Unavailable, ValidationFailed
from messaging import posting, writer
from messaging.models import Message
from messaging.posting import post_batch, post_message
from rooms.models import Room
from rooms.selectors import RoomNotFound
from rooms.services import update_room
from tests.factories import UserFactory, add_member, make_room


@pytest.fixture
def room(user, other_user) -> Room:
    room = make_room(owner=user, name="Batch")
    add_member(room, other_user)
    room.refresh_from_db()
    return room


def stream(room: Room) -> list[tuple[int, str]]:
    return list(Message.objects.filter(room=room).order_by("pos").values_list("pos", "content"))


@pytest.mark.django_db
def test_a_batch_is_stored_in_order_with_consecutive_positions_and_broadcast_after_commit(
    room, user, other_user, broadcasts, committing, django_assert_max_num_queries
):
    posts = [(user if n % 2 else other_user, {"content": f"m{n}"}) for n in range(20)]

    # A transaction with the room lock, the members, the retries, the position and
    # one insert: the same few statements for 20 messages as for one.
    with committing(), django_assert_max_num_queries(8):
        outcomes = post_batch(room_id=room.pk, posts=posts)

    assert [o["content"] for o in outcomes] == [f"m{n}" for n in range(20)]
    first = outcomes[0]["pos"]
    assert [o["pos"] for o in outcomes] == list(range(first, first + 20))
    assert all(o["seq"] == o["pos"] and o["id"] for o in outcomes)
    assert stream(room)[-20:] == [(first + n, f"m{n}") for n in range(20)]
    room.refresh_from_db()
    assert room.pos == first + 19 and room.last_message_at is not None
    # Broadcast once each, in position order, the same data as the answers.
    assert [event["message"] for _, event in broadcasts] == outcomes
    assert {group for group, _ in broadcasts} == {f"room.{room.pk}"}


@pytest.mark.django_db
def test_each_post_gets_its_own_answer_and_one_error_does_not_spoil_the_batch(
    room, user, other_user, staff_user, settings, broadcasts, committing
):
    stranger = UserFactory()
    earlier, _ = post_message(room=room, author=user, content="earlier", client_id="k1")
    elsewhere = make_room(owner=user, name="Elsewhere")
    post_message(room=elsewhere, author=user, content="there", client_id="k-there")
    settings.CHAT_RATE_LIMIT = (9, 60)  # alice posts 8 below; bob has used his 9
    for _ in range(9):
        throttle.hit(f"send:{other_user.pk}", limit=9, window=60)
    posts = [
        (user, {"content": "one", "client_id": "k2"}),
        (stranger, {"content": "not a member"}),  # public room, not joined
        (other_user, {"content": "over the limit"}),
        (user, {"content": ""}),  # blank
        (user, {"content": "retry", "client_id": "k1"}),  # an earlier message
        (user, {"content": "one again", "client_id": "k2"}),  # twice in this batch
        (user, {"content": "clash", "client_id": "k-there"}),  # used in another room
        (user, {"content": "re", "reply_to": earlier.pk}),  # a reply, in its place
        (user, {"content": 5}),  # DRF coerces numbers to text, as over REST
        (staff_user, {"content": "staff need not join"}),
        (user, {"content": "x", "type": "system"}),
    ]

    with committing():
        outcomes = post_batch(room_id=room.pk, posts=posts)

    errors = {i: o for i, o in enumerate(outcomes) if isinstance(o, ChatError)}
    assert type(errors.pop(1)) is Forbidden
    assert type(errors.pop(2)) is RateLimited
    assert errors.pop(3).fields == {"content": ["This field may not be blank."]}
    assert errors.pop(6).fields == {"client_id": ["Already used in another room."]}
    assert type(errors.pop(10)) is Forbidden
    assert errors == {}
    assert outcomes[4]["id"] == earlier.pk and outcomes[4]["content"] == "earlier"
    assert outcomes[5] == outcomes[0]  # one message for the duplicate
    assert outcomes[7]["reply_to"] == earlier.pk
    assert outcomes[8]["content"] == "5"
    assert outcomes[9]["sender"]["id"] == staff_user.pk
    stored = [content for _, content in stream(room)]
    # In the order sent: replies and files are stored with the batch, not after it.
    assert stored == ["earlier", "one", "re", "5", "staff need not join"]
    assert [pos for pos, _ in stream(room)] == list(range(1, len(stored) + 1))
    assert len(broadcasts) == 4


@pytest.mark.django_db
def test_a_room_that_is_not_there_or_not_visible_answers_not_found(user, other_user):
    private = make_room(owner=user, name="Hidden", kind=Room.Kind.PRIVATE)

    missing = post_batch(room_id=10**9, posts=[(user, {"content": "hi"})])
    hidden = post_batch(room_id=private.pk, posts=[(other_user, {"content": "hi"})])

    assert type(missing[0]) is RoomNotFound
    assert type(hidden[0]) is RoomNotFound
    assert not Message.objects.filter(content="hi").exists()


@pytest.mark.django_db
def test_an_archived_room_refuses_new_posts_but_still_answers_retries(room, user):
    earlier, _ = post_message(room=room, author=user, content="before", client_id="r1")
    update_room(room=room, actor=user, is_archived=True)

    outcomes = post_batch(
        room_id=room.pk,
        posts=[(user, {"content": "after"}), (user, {"content": "x", "client_id": "r1"})],
    )

    assert type(outcomes[0]) is Forbidden
    assert outcomes[1]["id"] == earlier.pk


@pytest.mark.django_db
def test_a_clash_found_only_at_insert_falls_back_to_one_by_one(room, user, monkeypatch):
    """The race: another process stores the same sender's client_id (in another room)
    between the batch's lookup and its insert. Forced here by hiding the lookup's answer."""
    elsewhere = make_room(owner=user, name="Other Process")
    post_message(room=elsewhere, author=user, content="won the race", client_id="race")
    monkeypatch.setattr(posting, "_retries_of", lambda drafts: {})

    outcomes = post_batch(
        room_id=room.pk,
        posts=[
            (user, {"content": "fine", "client_id": "ok"}),
            (user, {"content": "lost", "client_id": "race"}),
        ],
    )

    assert outcomes[0]["content"] == "fine"
    assert isinstance(outcomes[1], ValidationFailed)
    assert [content for _, content in stream(room)] == ["fine"]


@pytest.mark.django_db
def test_ids_beyond_the_databases_integers_fail_only_their_own_post(
    room, user, broadcasts, committing
):
    """SQLite cannot even bind an integer over 2**63 - 1: such a post used to raise in the
    batch's transaction, and every post of the batch answered `unavailable`."""
    posts = [
        (user, {"content": "before"}),
        (user, {"content": "files", "attachments": [2**63]}),
        (user, {"content": "reply", "reply_to": 2**64}),
        (user, {"content": "after"}),
    ]

    with committing():
        outcomes = post_batch(room_id=room.pk, posts=posts)

    assert outcomes[0]["content"] == "before" and outcomes[3]["content"] == "after"
    assert outcomes[1].fields.keys() == {"attachments"}
    assert outcomes[2].fields.keys() == {"reply_to"}
    assert type(outcomes[1]) is type(outcomes[2]) is ValidationFailed
    assert [content for _, content in stream(room)] == ["before", "after"]
    assert len(broadcasts) == 2


@pytest.mark.django_db
def test_a_database_error_in_one_posts_lookup_fails_that_post_alone(
    room, user, broadcasts, committing, monkeypatch
):
    """A lookup the database refuses (on PostgreSQL it would abort the whole transaction)
    runs in a savepoint of its own: that post answers `unavailable`, the others are stored."""
    real = posting.attachments_for_message

    def refusing(*, uploader, ids):
        if 666 in ids:
            raise DatabaseError("refused")
        return real(uploader=uploader, ids=ids)

    monkeypatch.setattr(posting, "attachments_for_message", refusing)
    posts = [
        (user, {"content": "one"}),
        (user, {"content": "cursed", "attachments": [666]}),
        (user, {"content": "two", "reply_to": None}),
    ]

    with committing():
        outcomes = post_batch(room_id=room.pk, posts=posts)

    assert type(outcomes[1]) is Unavailable and outcomes[1].code == "unavailable"
    assert [o["content"] for o in (outcomes[0], outcomes[2])] == ["one", "two"]
    assert [content for _, content in stream(room)] == ["one", "two"]
    assert len(broadcasts) == 2


@pytest.mark.django_db
def test_an_insert_the_database_refuses_is_retried_post_by_post(room, user, monkeypatch):
    """One post's values refused at the insert (DataError): the batch is stored again one
    post at a time, so only that post fails."""
    real = posting.stream.append

    def refusing(room, drafts):
        if any(draft.content == "poison" for draft in drafts):
            raise DataError("value out of range")
        return real(room, drafts)

    monkeypatch.setattr(posting.stream, "append", refusing)
    posts = [(user, {"content": "one"}), (user, {"content": "poison"}), (user, {"content": "two"})]

    outcomes = post_batch(room_id=room.pk, posts=posts)

    assert type(outcomes[1]) is Unavailable
    assert [outcomes[0]["content"], outcomes[2]["content"]] == ["one", "two"]
    assert [content for _, content in stream(room)] == ["one", "two"]


# ------------------------------------------------------------------- the writer


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_concurrent_posts_to_one_room_share_transactions_and_stay_gap_free(
    monkeypatch, worker_connections_closed
):
    authors = await sync_to_async(lambda: [UserFactory() for _ in range(5)])()
    room = await sync_to_async(make_room)(owner=authors[0], name="Crowd")
    for author in authors[1:]:
        await sync_to_async(add_member)(room, author)
    batches: list[int] = []
    real = posting.post_batch

    def counting(*, room_id, posts):
        batches.append(len(posts))
        return real(room_id=room_id, posts=posts)

    monkeypatch.setattr(writer, "_post_batch", writer.database_sync_to_async(counting))
    sends = [
        writer.group_commit.post(
            room.pk, authors[n % 5], {"content": f"c{n}", "client_id": f"c{n}"}
        )
        for n in range(60)
    ]

    answers = await asyncio.gather(*sends)

    assert sum(batches) == 60
    assert len(batches) < 60  # posts that arrived together were stored together
    assert max(batches) <= writer.MAX_BATCH
    positions = sorted(a["pos"] for a in answers)
    assert positions == list(range(positions[0], positions[0] + 60))
    stored = await sync_to_async(lambda: Message.objects.filter(room=room).count())()
    assert stored == 60


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_database_failure_fails_the_batch_and_the_next_post_works(
    user, monkeypatch, worker_connections_closed
):
    room = await sync_to_async(make_room)(owner=user, name="Flaky Database")
    real = writer._post_batch
    failures = iter([RuntimeError("connection lost")])

    async def once_failing(**kwargs):
        for exc in failures:
            raise exc
        return await real(**kwargs)

    monkeypatch.setattr(writer, "_post_batch", once_failing)

    with pytest.raises(RuntimeError):
        await writer.group_commit.post(room.pk, user, {"content": "lost"})
    answer = await writer.group_commit.post(room.pk, user, {"content": "kept"})

    assert answer["content"] == "kept"
    contents = await sync_to_async(
        lambda: list(Message.objects.values_list("content", flat=True))
    )()
    assert contents == ["kept"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_crafted_post_does_not_spoil_the_answers_of_its_batch(
    user, worker_connections_closed
):
    room = await sync_to_async(make_room)(owner=user, name="Crafted")
    datas = [{"content": f"c{n}"} for n in range(6)]
    datas[3] = {"content": "crafted", "attachments": [2**63]}

    outcomes = await asyncio.gather(
        *(writer.group_commit.submit(room.pk, user, data) for data in datas)
    )

    assert isinstance(outcomes[3], ValidationFailed)
    assert [o["content"] for n, o in enumerate(outcomes) if n != 3] == [
        "c0",
        "c1",
        "c2",
        "c4",
        "c5",
    ]
    stored = await sync_to_async(
        lambda: list(Message.objects.order_by("pos").values_list("content", flat=True))
    )()
    assert stored == ["c0", "c1", "c2", "c4", "c5"]
