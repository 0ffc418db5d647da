import pytest

from tests.live import WS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.asyncio
async def test_two_users_chat_in_general(chat_server, general, alice_token, bob_token):
    async with (
        await WS.connect(f"{chat_server.ws_url}/ws/", token=alice_token) as alice,
        await WS.connect(f"{chat_server.ws_url}/ws/", token=bob_token) as bob,
    ):
        assert (await alice.recv())["type"] == "authenticated"
        assert (await bob.recv())["type"] == "authenticated"
        assert (await alice.request({"type": "join", "room": general.pk}))["type"] == "ack"
        assert (await bob.request({"type": "join", "room": general.pk}))["type"] == "ack"
        ack = await alice.request({"type": "message", "room": general.pk, "content": "hi bob"})
        assert ack["type"] == "ack"
        got = await bob.recv_until("message", pos=ack["message"]["pos"])
        assert got["message"]["content"] == "hi bob"
        assert got["message"]["sender"]["username"] == "alice"
