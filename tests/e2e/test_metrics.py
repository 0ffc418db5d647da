"""GET /metrics of a real server moves with what its sockets do."""

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest

from tests.factories import add_member
from tests.live import WAIT, WS

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def sample(body: str, name: str) -> float:
    """The value of an unlabelled series (0 when absent)."""
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def scrape(server) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


async def scrape_until(server, ok: Callable[[str], bool], timeout: float = WAIT) -> str:
    """The first scrape for which `ok` holds, or the last one after `timeout` seconds: a
    figure the server updates after it answered (or after a socket closed) may lag."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    body = await scrape(server)
    while not ok(body) and loop.time() < deadline:
        await asyncio.sleep(0.2)
        body = await scrape(server)
    return body


async def settled(server, name: str) -> str:
    """A scrape once the gauge `name` holds still: sockets closed just before (by an
    earlier test) leave it only when the server has run their `disconnect`."""
    previous = await scrape(server)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while loop.time() < deadline:
        await asyncio.sleep(0.5)
        body = await scrape(server)
        if sample(body, name) == sample(previous, name):
            return body
        previous = body
    return previous


@pytest.fixture
def room_of_two(general, user, other_user):
    add_member(general, user)
    add_member(general, other_user)
    return general


async def test_a_delivered_message_shows_in_the_servers_metrics(
    chat_server, room_of_two, alice_token, bob_token
):
    general = room_of_two
    before = await settled(chat_server, "chat_connections")
    stored = "chat_messages_stored_total"
    sent = "chat_frames_out_total"
    fanouts = "chat_fanout_seconds_count"

    def moved(during: str) -> bool:
        # The fan-out's figures are updated once it has written to every socket.
        frames_out = sample(during, sent) - sample(before, sent)
        return frames_out >= 2 and sample(during, fanouts) > sample(before, fanouts)

    async with (
        await WS.connect(f"{chat_server.ws_url}/ws/rooms/{general.pk}/", token=alice_token) as a,
        await WS.connect(f"{chat_server.ws_url}/ws/rooms/{general.pk}/", token=bob_token) as b,
    ):
        for ws in (a, b):
            await ws.recv_until("room_users", room=general.pk)
        ack = await a.request({"type": "message", "room": general.pk, "content": "counted"})
        assert ack["type"] == "ack", ack
        await b.recv_until("message", room=general.pk)
        during = await scrape_until(chat_server, moved)
    assert sample(during, "chat_connections") - sample(before, "chat_connections") == 2
    assert sample(during, stored) - sample(before, stored) == 1
    # The message went to both sockets (and presence events too): at least two frames.
    assert sample(during, sent) - sample(before, sent) >= 2
    assert sample(during, fanouts) > sample(before, fanouts)
    assert 'chat_frames_in_total{type="message"}' in during


def histogram_over_one(body: str, name: str) -> float:
    """How many observations of a histogram were above 1 (count minus the `le="1.0"` bucket)."""
    count = sample(body, f"{name}_count")
    match = re.search(rf'^{re.escape(name)}_bucket{{le="1.0"}} ([0-9.e+-]+)$', body, re.MULTILINE)
    return count - (float(match.group(1)) if match else 0.0)


async def test_a_burst_of_posts_is_stored_in_shared_transactions_and_answered_in_order(
    chat_server, room_of_two, alice_token
):
    """A socket that sends many posts without waiting: the server reads on while they are
    stored, stores them together (the `chat_write_batch_posts` histogram sees batches of
    more than one), and answers every frame in the order it was sent, a bad one included."""
    general = room_of_two
    before = await scrape(chat_server)
    async with await WS.connect(
        f"{chat_server.ws_url}/ws/rooms/{general.pk}/", token=alice_token
    ) as alice:
        await alice.recv_until("room_users", room=general.pk)
        frames = [
            {"type": "message", "room": general.pk, "content": f"burst {n}", "ref": f"b{n}"}
            for n in range(40)
        ]
        frames[20] = {"type": "message", "room": general.pk, "content": "", "ref": "b20"}
        frames.append({"type": "ping", "ref": "last"})
        for frame in frames:  # all sent before any answer is read
            await alice.send(frame)
        answers = []
        while len(answers) < len(frames):
            frame = await alice.recv()
            if frame.get("ref") is not None:
                answers.append(frame)
        after = await scrape(chat_server)

    assert [a["ref"] for a in answers] == [f["ref"] for f in frames]
    assert answers[20]["type"] == "error" and answers[20]["code"] == "validation_error"
    assert answers[-1]["type"] == "pong"
    acks = [a for a in answers if a["type"] == "ack"]
    assert len(acks) == 39
    positions = [a["message"]["pos"] for a in acks]
    assert positions == list(range(positions[0], positions[0] + 39))  # in order, no gaps
    batched = "chat_write_batch_posts"
    assert histogram_over_one(after, batched) > histogram_over_one(before, batched)


async def test_the_server_keeps_its_startup_objects_out_of_full_collections(chat_server):
    body = await scrape(chat_server)
    assert sample(body, "chat_gc_frozen_objects") > 10_000
    assert "chat_gc_full_pause_seconds_bucket" in body
