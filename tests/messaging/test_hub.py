"""The in-process fan-out (`chatproject.hub`) on its own, with stand-in sockets.

The end-to-end tests (tests/e2e) prove it between real Daphne processes and Redis.
"""

import asyncio
import threading

import pytest
import pytest_asyncio

from chatproject import hub as hub_module
from chatproject import metrics
from chatproject.hub import Frame, Hub


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_a_frame_is_an_unmasked_final_text_frame_with_the_right_length(size, header):
    text = "é" * (size // 2) + "x" * (size % 2)  # UTF-8 bytes, not characters, count
    wire = Frame(text).wire
    assert wire == header + text.encode()


def test_a_frame_parses_back_with_a_real_websocket_implementation():
    from websockets.frames import Frame as Parsed
    from websockets.streams import StreamReader

    text = '{"type":"message","content":"' + "ü" * 300 + '"}'
    reader = StreamReader()
    reader.feed_data(Frame(text).wire)
    parser = Parsed.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        parsed = done.value
    assert parsed.fin and parsed.opcode.name == "TEXT"
    assert parsed.data.decode() == text


@pytest_asyncio.fixture
async def new_hub():
    """Hubs for one test, their tasks stopped at its end."""
    made: list[Hub] = []

    def make() -> Hub:
        made.append(Hub())
        return made[-1]

    yield make
    for hub in made:
        await hub.stop()


class Socket:
    def __init__(self, fail: bool = False) -> None:
        self.got: list[tuple[dict, str]] = []
        self.fail = fail
        self.closed: int | None = None

    async def deliver(self, event: dict, text: str) -> None:
        if self.fail:
            raise RuntimeError("this socket's delivery breaks")
        self.got.append((event, text))

    async def close(self, code: int) -> None:
        self.closed = code


async def settled(hub: Hub) -> None:
    """Until the hub has delivered everything published so far."""
    for _ in range(100):
        if hub._local.empty():
            await asyncio.sleep(0)
            if hub._local.empty():
                return
        await asyncio.sleep(0.001)
    raise AssertionError("the hub did not deliver within 100 rounds")


@pytest.mark.asyncio
async def test_each_event_is_encoded_once_and_reaches_every_subscriber_in_order(new_hub):
    hub = new_hub()
    first, second, elsewhere = Socket(), Socket(), Socket()
    await hub.subscribe("room.1", first)
    await hub.subscribe("room.1", second)
    await hub.subscribe("room.2", elsewhere)
    for pos in range(1, 51):
        hub.publish("room.1", {"type": "message", "room": 1, "pos": pos})
    await settled(hub)
    assert [e["pos"] for e, _ in first.got] == list(range(1, 51))
    assert [e["pos"] for e, _ in second.got] == list(range(1, 51))
    # The same string object for every socket: one JSON encoding per event.
    assert all(a is b for (_, a), (_, b) in zip(first.got, second.got, strict=True))
    assert first.got[0][1].text == '{"type":"message","room":1,"pos":1}'
    assert elsewhere.got == []


@pytest.mark.asyncio
async def test_an_unsubscribed_socket_gets_nothing_more(new_hub):
    hub = new_hub()
    staying, leaving = Socket(), Socket()
    await hub.subscribe("room.1", staying)
    await hub.subscribe("room.1", leaving)
    hub.publish("room.1", {"type": "message", "pos": 1})
    await settled(hub)
    await hub.unsubscribe("room.1", leaving)
    await hub.unsubscribe("room.1", leaving)  # twice changes nothing
    hub.publish("room.1", {"type": "message", "pos": 2})
    await settled(hub)
    assert [e["pos"] for e, _ in staying.got] == [1, 2]
    assert [e["pos"] for e, _ in leaving.got] == [1]
    assert hub.subscribers("room.1") == 1


@pytest.mark.asyncio
async def test_a_failing_socket_does_not_stop_delivery_to_the_others(new_hub):
    hub = new_hub()
    broken, fine = Socket(fail=True), Socket()
    await hub.subscribe("room.1", broken)
    await hub.subscribe("room.1", fine)
    hub.publish("room.1", {"type": "message", "pos": 1})
    hub.publish("room.1", {"type": "message", "pos": 2})
    await settled(hub)
    assert [e["pos"] for e, _ in fine.got] == [1, 2]


@pytest.mark.asyncio
async def test_an_event_that_cannot_be_encoded_is_logged_and_skipped(new_hub):
    hub = new_hub()
    socket = Socket()
    await hub.subscribe("room.1", socket)
    hub.publish("room.1", {"type": "message", "pos": 1, "bad": object()})
    hub.publish("room.1", {"type": "message", "pos": 2})
    await settled(hub)
    assert [e["pos"] for e, _ in socket.got] == [2]


@pytest.mark.asyncio
async def test_publish_soon_from_another_thread_keeps_that_threads_order(new_hub):
    hub = new_hub()
    socket = Socket()
    await hub.subscribe("room.1", socket)

    def database_thread() -> list[bool]:
        return [hub.publish_soon("room.1", {"type": "message", "pos": pos}) for pos in range(1, 21)]

    accepted = await asyncio.to_thread(database_thread)
    assert all(accepted)
    await settled(hub)
    assert [e["pos"] for e, _ in socket.got] == list(range(1, 21))


def test_publish_soon_without_a_running_loop_says_so():
    hub = Hub()
    assert hub.publish_soon("room.1", {"type": "message"}) is False
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(hub.publish_soon("room.1", {})))
    thread.start()
    thread.join()
    assert result == [False]


@pytest.mark.asyncio
async def test_a_full_backlog_drops_and_counts_instead_of_growing(monkeypatch, new_hub):
    monkeypatch.setattr(hub_module, "MAX_BACKLOG", 5)
    hub = new_hub()
    socket = Socket()
    await hub.subscribe("room.1", socket)
    dropped = metrics.FANOUT_DROPPED._value.get()
    for pos in range(1, 9):  # no await in between: the deliverer cannot run
        hub.publish("room.1", {"type": "message", "pos": pos})
    await settled(hub)
    assert [e["pos"] for e, _ in socket.got] == [1, 2, 3, 4, 5]
    assert metrics.FANOUT_DROPPED._value.get() - dropped == 3


@pytest.mark.asyncio
async def test_a_new_event_loop_starts_from_an_empty_registry(new_hub):
    hub = new_hub()
    socket = Socket()
    await hub.subscribe("room.1", socket)
    assert hub.subscribers("room.1") == 1

    def other_loop() -> int:
        async def count() -> int:
            hub._bind()
            return hub.subscribers("room.1")

        return asyncio.run(count())

    assert await asyncio.to_thread(other_loop) == 0


@pytest.mark.asyncio
async def test_a_fresh_process_hears_another_process_over_redis(settings, new_hub):
    """Two hubs (as two processes would have) over the real Redis layer. A fresh hub's
    first subscription and its reader ask for the process's channel at the same moment:
    they must get the same one, or the process never hears anything from another."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: processes meet only through Redis")
    here, there = new_hub(), new_hub()
    socket = Socket()
    await here.subscribe("room.fresh", socket)
    await asyncio.sleep(0.2)  # the pub/sub subscription reaches Redis
    there.publish("room.fresh", {"type": "message", "pos": 7})
    for _ in range(100):
        if socket.got:
            break
        await asyncio.sleep(0.02)
    assert [event["pos"] for event, _ in socket.got] == [7]


@pytest.mark.asyncio
async def test_a_redis_restart_right_after_the_first_subscription_is_noticed(
    settings, monkeypatch, new_hub
):
    """The watcher learns Redis's run id on its first look; a restart between a fresh
    process's first subscription and that look must still count as a restart, or the
    process stays deaf to the others (the restarted Redis forgot its membership)."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: only a Redis restart forgets the layer's memberships")
    run_ids = ["before-restart"]
    monkeypatch.setattr(hub_module, "_redis_run_id", lambda: run_ids[0])

    async def no_watcher(self) -> None:  # the watcher's first look comes late, here never
        return None

    monkeypatch.setattr(Hub, "_watch", no_watcher)
    hub = new_hub()
    socket = Socket()
    await hub.subscribe("room.restart", socket)
    run_ids[0] = "after-restart"  # Redis restarted: a new run id

    assert await hub.catch_up() is True  # caught up: subscribed anew...
    assert socket.closed == 1012  # ...and the socket told to recover with `after`
