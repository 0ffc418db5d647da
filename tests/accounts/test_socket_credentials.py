"""Sockets and the credentials they were opened with, at the consumer (the real ASGI
application in this process): a revocation closes the sockets of older credentials only,
a sign-out the sockets of that session only, a session socket re-checks its session when
it expires, and a revocation that lands while a socket is being set up is not missed.
Against real servers: tests/e2e/test_sessions.py."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import User
from accounts.sessions import session_digest
from chatproject import events
from chatproject.broadcast import publish, user_group
from chatproject.hub import hub
from messaging import consumers
from tests.messaging.test_consumer import (
    assert_still_open,
    frames_until_close,
    opened,
    recv,
    signed_in,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def fresh_token(user: User) -> str:
    current = await User.objects.aget(pk=user.pk)
    return (await sync_to_async(services.issue_tokens)(user=current))["access"]


async def session_cookie(user: User) -> tuple[Client, tuple]:
    client = Client()
    await sync_to_async(client.force_login)(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    return client, ((b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()),)


@contextlib.asynccontextmanager
async def session_socket(cookie: tuple) -> AsyncIterator[WebsocketCommunicator]:
    async with opened(headers=cookie) as comm:
        assert (await recv(comm))["type"] == "authenticated"
        yield comm


def assert_closed_unauthenticated(outcome: tuple[list[dict], int | None]) -> None:
    frames, code = outcome
    assert code == 4401, frames
    assert [f["code"] for f in frames if f["type"] == "error"] == ["unauthenticated"]


async def test_a_revocation_closes_the_sockets_of_older_credentials_only(user):
    old = await fresh_token(user)
    async with signed_in(old) as before:
        await sync_to_async(services.revoke_credentials)(user=user)
        assert_closed_unauthenticated(await frames_until_close(before))

    async with signed_in(await fresh_token(user)) as after:
        # The same revocation, arriving late (from a slow process), spares the newer one.
        publish(user_group(user.pk), events.credentials_revoked(generation=1))
        await assert_still_open(after)


async def test_signing_out_closes_the_sockets_of_that_session_only(user):
    leaving, leaving_cookie = await session_cookie(user)
    _, staying_cookie = await session_cookie(user)
    async with (
        session_socket(leaving_cookie) as ending,
        session_socket(staying_cookie) as kept,
    ):
        response = await sync_to_async(leaving.post)("/logout/")
        assert response.status_code == 302

        assert_closed_unauthenticated(await frames_until_close(ending))
        await assert_still_open(kept)


async def test_a_session_ended_event_names_the_session_by_digest_only(user):
    client, cookie = await session_cookie(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    async with session_socket(cookie) as ws:
        publish(user_group(user.pk), events.session_ended(session=key))  # the raw key: no
        await assert_still_open(ws)
        publish(user_group(user.pk), events.session_ended(session=session_digest(key)))
        assert_closed_unauthenticated(await frames_until_close(ws))


async def test_a_session_socket_rechecks_its_session_when_it_expires(user, monkeypatch):
    client, cookie = await session_cookie(user)
    rows = Session.objects.filter(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)
    await rows.aupdate(expire_date=timezone.now() + timedelta(seconds=1))
    checked = asyncio.Event()
    real_check = consumers._session_expiry

    async def check(key: str, user_id: int) -> float | None:
        expires = await real_check(key, user_id)
        checked.set()
        return expires

    monkeypatch.setattr(consumers, "_session_expiry", check)
    async with session_socket(cookie) as ws:
        # Extended meanwhile (Django saves a modified session with a new expiry date):
        # at the old date the socket looks, and stays.
        await rows.aupdate(expire_date=timezone.now() + timedelta(hours=1))
        await asyncio.wait_for(checked.wait(), timeout=10)
        await assert_still_open(ws)


async def test_a_session_socket_closes_when_its_session_expires(user):
    client, cookie = await session_cookie(user)
    rows = Session.objects.filter(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)
    await rows.aupdate(expire_date=timezone.now() + timedelta(seconds=1))

    async with session_socket(cookie) as ws:
        assert_closed_unauthenticated(await frames_until_close(ws, timeout=10))


async def test_a_revocation_during_the_sockets_set_up_is_not_missed(user, monkeypatch):
    token = await fresh_token(user)
    real_subscribe = hub.subscribe

    async def subscribe_after_a_revocation(group: str, socket) -> None:
        if group == user_group(user.pk):
            # Revoked (and announced) just before this socket subscribes to the user's
            # group: the announcement cannot reach it.
            await sync_to_async(services.revoke_credentials)(user=user)
        await real_subscribe(group, socket)

    monkeypatch.setattr(hub, "subscribe", subscribe_after_a_revocation)
    async with opened(token=token) as comm:
        assert_closed_unauthenticated(await frames_until_close(comm))
