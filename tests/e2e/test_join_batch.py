"""A batched `join` (`rooms: [{room, after?}, …]`) over a real socket: one answer for
every room, who is in each, each room's missed changes in order, then live ones; rooms
the user may not enter are refused in the answer without failing the others."""

import httpx
import pytest
from asgiref.sync import sync_to_async

from accounts.services import issue_tokens
from tests.factories import make_room
from tests.live import WS
from tests.test_event_catalogue import check_frame

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def token_of(user) -> str:
    return (await sync_to_async(issue_tokens)(user=user))["access"]


@pytest.mark.asyncio
async def test_one_frame_joins_many_rooms_and_replays_each(
    chat_server, user, other_user, worker_connections_closed
):
    alice, bob = await token_of(user), await token_of(other_user)
    talk = await sync_to_async(make_room)(owner=user, name="Batch talk")
    news = await sync_to_async(make_room)(owner=user, name="Batch news")
    secret = await sync_to_async(make_room)(owner=user, name="Batch secret", kind="private")
    async with httpx.AsyncClient(
        base_url=f"{chat_server.url}/api", headers={"Authorization": f"Bearer {alice}"}
    ) as http:
        said = []
        for n in range(3):
            r = await http.post(f"/rooms/{talk.pk}/messages/", json={"content": f"talk {n}"})
            assert r.status_code == 201, r.text
            said.append(r.json())

    async with await WS.connect(f"{chat_server.ws_url}/ws/", token=bob) as ws:
        await ws.recv_until("authenticated")
        after = said[0]["pos"]
        answer = await ws.request(
            {
                "type": "join",
                "rooms": [
                    {"room": talk.pk, "after": after},
                    {"room": news.pk},
                    {"room": secret.pk},
                    {"room": 10**12},
                ],
            }
        )
        assert answer["type"] == "ack", answer
        check_frame(answer)  # the catalogue's JoinedRoom and RefusedRoom, exactly
        positions = {r["room"]: r["pos"] for r in answer["rooms"]}
        assert set(positions) == {talk.pk, news.pk}
        assert positions[talk.pk] >= said[-1]["pos"]
        assert [(r["room"], r["code"]) for r in answer["refused"]] == [
            (secret.pk, "not_found"),
            (10**12, "not_found"),
        ]
        users = {}
        replayed = []
        while len(users) < 2 or len(replayed) < 2:
            frame = await ws.recv()
            if frame["type"] == "room_users":
                users[frame["room"]] = frame
            elif frame["type"] == "message" and frame["room"] == talk.pk:
                replayed.append(frame["message"]["content"])
        assert replayed == ["talk 1", "talk 2"]  # after `after`, in order, once
        assert {u["id"] for u in users[news.pk]["users"]} >= {other_user.pk}

        async with httpx.AsyncClient(
            base_url=f"{chat_server.url}/api", headers={"Authorization": f"Bearer {alice}"}
        ) as http:
            await http.post(f"/rooms/{news.pk}/messages/", json={"content": "live"})
        live = await ws.recv_until("message", room=news.pk)
        assert live["message"]["content"] == "live"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "rooms",
    [None, [], "1", [1], [{"after": 1}], [{"room": 0}], [{"room": 1, "after": -1}], [{}] * 101],
)
async def test_a_bad_rooms_list_is_refused_and_the_socket_stays(
    chat_server, other_user, rooms, worker_connections_closed
):
    bob = await token_of(other_user)
    async with await WS.connect(f"{chat_server.ws_url}/ws/", token=bob) as ws:
        await ws.recv_until("authenticated")
        answer = await ws.request({"type": "join", "rooms": rooms})
        assert answer["type"] == "error" and answer["code"] == "validation_error", answer
        assert (await ws.request({"type": "ping"}))["type"] == "pong"
