"""The web chat page in a real browser (Debian's Chromium driven by Playwright).

Every test talks to a real `manage.py serve` process: the shared `chat_server`, or a
server of its own when it must be stopped and restarted. Browser users register through
that server (the test process hashes passwords with MD5, which the server cannot
verify) and sign in through the /login/ page, so each page holds a real session.
Whatever another user does that the page must show live goes through the server too
(its REST API or another browser), so the server's channel layer carries it.

The DOM contract these tests rely on is the page's: `#connection-state[data-state]`,
`#room-list li[data-room-id]` (direct rooms in `#direct-list`), `#messages .message`,
`form#composer`, and so on.

Playwright's sync API: its event loop runs on the test's thread while the browser lives,
so tests make no ORM calls (users, rooms and messages are made through the server).
"""

import os
import re
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright

from tests.live import LiveServer, server_environment

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.access("/usr/bin/chromium", os.X_OK),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery-9"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Bounds only a broken page or server reaches; a loaded machine (two cores shared by the
# browser, the servers and more) can take several seconds for what takes milliseconds.
WAIT_MS = 20_000  # for anything that crosses the server once
RECONNECT_MS = 60_000  # a restart: SIGTERM drain, a new process, the page's back-off

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'
XSS_NAME = "<img src=x onerror=__xss=1><script>__xss=1</script>"  # display names: 64 max

Rest = Callable[..., Any]

# Every frame the page's sockets receive, parsed, in `window.__frames`. The recorder is the
# socket's first "message" listener, so the page's own one runs right after it, in the
# same task: once a frame shows here, the page has handled it.
RECORD_FRAMES = """
(() => {
  const Native = window.WebSocket;
  window.__frames = [];
  window.WebSocket = new Proxy(Native, {
    construct(target, args) {
      const socket = new target(...args);
      socket.addEventListener("message", (event) => {
        try {
          window.__frames.push(JSON.parse(event.data));
        } catch {
          /* not JSON: not a frame of ours */
        }
      });
      return socket;
    },
  });
})();
"""


def _png(width: int = 4, height: int = 4) -> bytes:
    """A real PNG (the server takes the type from the bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x3b\x82\xf6" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png()

expect.set_options(timeout=WAIT_MS)


# ------------------------------------------------------------------------ helpers


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def register(server: LiveServer, username: str, display_name: str = "") -> dict[str, Any]:
    """A user made by the server itself; `{"user", "access", "refresh"}`."""
    body = {"username": username, "password": PASSWORD, "display_name": display_name}
    answer = _retrying(
        lambda: httpx.post(f"{server.url}/api/auth/register/", json=body, timeout=10)
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def rest(server: LiveServer, account: dict[str, Any]) -> Rest:
    """`call(method, path, json=...)` against the server's API as `account`."""
    headers = {"Authorization": f"Bearer {account['access']}"}

    def call(method: str, path: str, **kwargs: Any) -> Any:
        answer = _retrying(
            lambda: httpx.request(
                method, f"{server.url}{path}", headers=headers, timeout=10, **kwargs
            )
        )
        assert answer.status_code < 400, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    return call


def _retrying(send: Callable[[], httpx.Response]) -> httpx.Response:
    """Seeding is not what these tests are about: wait out a rate limit."""
    for _ in range(60):
        answer = send()
        if answer.status_code != 429:
            return answer
        time.sleep(min(float(answer.headers.get("Retry-After", "1")), 5))
    return answer


def sign_in(page: Page, server: LiveServer, username: str) -> None:
    page.goto(f"{server.url}/login/")
    form = page.locator("form#login-form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{server.url}/")


def connected(page: Page, timeout: float = WAIT_MS) -> None:
    expect(page.locator("#connection-state")).to_have_attribute(
        "data-state", "connected", timeout=timeout
    )


def room_item(page: Page, room_id: int) -> Locator:
    """A room in the sidebar: the page lists direct rooms apart, in `#direct-list`."""
    return page.locator(f':is(#room-list, #direct-list) li[data-room-id="{room_id}"]')


def messages_with(page: Page, text: str) -> Locator:
    """The `.message` elements of the open room whose content is exactly `text`."""
    return page.locator("#messages .message").filter(
        has=page.locator(".message-content").filter(has_text=re.compile(rf"^{re.escape(text)}$"))
    )


def received(page: Page, fields: dict[str, Any], timeout: float = WAIT_MS) -> None:
    """Wait until the page has received, and handled, a socket frame whose fields (dotted
    paths: `{"type": "message", "message.content": "hi"}`) have these values."""
    page.wait_for_function(
        """(fields) => window.__frames.some((frame) => Object.entries(fields).every(
            ([path, value]) => path.split(".").reduce((v, k) => (v == null ? v : v[k]), frame)
                === value))""",
        arg=fields,
        polling=100,
        timeout=timeout,
    )


def contents(page: Page) -> list[str]:
    return page.locator("#messages .message .message-content").evaluate_all(
        "nodes => nodes.map(n => n.textContent)"
    )


def send(page: Page, text: str) -> None:
    box = page.locator("#message-input")
    box.fill(text)
    box.press("Enter")


def hover_click(message: Locator, selector: str) -> None:
    """Message actions may show only on hover (or focus), as on most chat pages."""
    message.hover()
    message.locator(selector).click()


def open_details(form: Locator) -> None:
    """Sidebar forms may sit in a collapsed <details>: open it as a click on its summary would."""
    form.evaluate("node => { const d = node.closest('details'); if (d) d.open = true; }")


def no_xss(page: Page) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#messages script, #room-list script, #sidebar script").count() == 0


def restart(server: LiveServer) -> None:
    """Start a stopped `LiveServer` again on the port it had, as a restarted deployment."""
    port = server.port
    for attempt in range(5):
        try:
            server.start(port=port)
            return
        except RuntimeError:  # the port may linger a moment after the old process
            if attempt == 4:
                raise
            time.sleep(0.5)


# ----------------------------------------------------------------------- fixtures


@pytest.fixture
def open_page(general) -> Iterator[Callable[..., Page]]:
    """`open_page(server, username, viewport=...)`: a fresh browser profile signed in as
    `username`, on `/` with the socket connected.

    Playwright's sync API keeps an event loop running on this thread while it lives, and
    Django refuses ORM calls under a running loop: so the browser starts after the
    database fixtures (General exists first) and stops before the database is emptied.
    """
    contexts: list[BrowserContext] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def open_(
            server: LiveServer, username: str | None = None, viewport: dict[str, int] = DESKTOP
        ) -> Page:
            context = browser.new_context(viewport=viewport)
            context.set_default_timeout(WAIT_MS)
            context.add_init_script(RECORD_FRAMES)
            contexts.append(context)
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(f"{username}: {error}"))
            if username is not None:
                sign_in(page, server, username)
                connected(page)
            return page

        try:
            yield open_
        finally:
            for context in contexts:
                context.close()
            browser.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def people(chat_server, general) -> Callable[..., tuple[dict[str, Any], Rest]]:
    """`people("alice", "Alice")`: a user registered on the shared server, and a REST
    caller for them."""

    def make(prefix: str, display_name: str = "") -> tuple[dict[str, Any], Rest]:
        account = register(chat_server, unique(prefix), display_name)
        return account, rest(chat_server, account)

    return make


# -------------------------------------------------------------------------- tests


def test_register_lands_on_the_connected_chat_with_general_open(chat_server, general, open_page):
    page = open_page(chat_server)
    page.goto(f"{chat_server.url}/")
    expect(page).to_have_url(re.compile(r"/login/"))

    username = unique("newcomer")
    page.goto(f"{chat_server.url}/register/")
    form = page.locator("form#register-form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=display_name]").fill("New Comer")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()

    expect(page).to_have_url(f"{chat_server.url}/")
    connected(page)
    expect(page.locator("#room-title")).to_have_text("General")
    expect(room_item(page, general.pk).locator(".room-name")).to_have_text("General")
    expect(page.locator("#message-input")).to_be_editable()

    # Signing out ends the session; signing in through /login/ brings the page back.
    page.locator("form#logout-form button").click()
    page.goto(f"{chat_server.url}/")
    expect(page).to_have_url(re.compile(r"/login/"))
    sign_in(page, chat_server, username)
    connected(page)
    expect(page.locator("#room-title")).to_have_text("General")


def test_two_users_chat_live_both_ways_without_duplicates(chat_server, people, open_page, tmp_path):
    alice, _ = people("alice", "Alice")
    bob, _ = people("bob", "Bob")
    alice_page = open_page(chat_server, alice["user"]["username"])
    bob_page = open_page(chat_server, bob["user"]["username"])
    for page in (alice_page, bob_page):
        expect(page.locator("#room-title")).to_have_text("General")

    # Every `.message` the sender's page adds, in order: the pending copy comes first.
    alice_page.evaluate(
        """() => {
            window.__added = [];
            new MutationObserver((records) => {
                for (const record of records) for (const node of record.addedNodes) {
                    if (node.nodeType !== 1 || !node.classList.contains("message")) continue;
                    window.__added.push({
                        pending: node.classList.contains("pending"),
                        id: node.getAttribute("data-message-id"),
                        client: node.getAttribute("data-client-id"),
                        text: node.querySelector(".message-content")?.textContent,
                    });
                }
            }).observe(document.querySelector("#messages"), {childList: true, subtree: true});
        }"""
    )
    send(alice_page, "Hi Bob, are you there?")
    expect(alice_page.locator("#message-input")).to_have_value("")

    on_bob = messages_with(bob_page, "Hi Bob, are you there?")
    expect(on_bob).to_have_count(1)
    expect(on_bob.locator(".message-sender")).to_have_text("Alice")
    expect(on_bob).not_to_have_class(re.compile(r"\bmine\b"))

    mine = messages_with(alice_page, "Hi Bob, are you there?")
    expect(mine).to_have_count(1)
    expect(mine).to_have_attribute("data-message-id", re.compile(r"^\d+$"))
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))
    expect(mine).to_have_class(re.compile(r"\bmine\b"))
    added = [
        a for a in alice_page.evaluate("window.__added") if a["text"] == "Hi Bob, are you there?"
    ]
    assert added[0]["pending"] and added[0]["id"] is None, added
    assert added[0]["client"], added
    assert not added[-1]["pending"] and added[-1]["id"], added
    assert on_bob.get_attribute("data-message-id") == mine.get_attribute("data-message-id")

    send(bob_page, "Yes! Hello Alice 👋")
    on_alice = messages_with(alice_page, "Yes! Hello Alice 👋")
    expect(on_alice).to_have_count(1)
    expect(on_alice.locator(".message-sender")).to_have_text("Bob")
    send(alice_page, "Great, the page works.")
    expect(messages_with(bob_page, "Great, the page works.")).to_have_count(1)

    # Both pages also received (and handled) the broadcast of every message, their own
    # included: still one each.
    texts = ("Hi Bob, are you there?", "Yes! Hello Alice 👋", "Great, the page works.")
    for page in (alice_page, bob_page):
        for text in texts:
            received(page, {"type": "message", "message.content": text})
    for page in (alice_page, bob_page):
        shown = contents(page)
        for text in texts:
            assert shown.count(text) == 1, shown
        assert page.locator("#messages .message.pending").count() == 0
        ids = page.locator("#messages .message[data-message-id]").evaluate_all(
            "nodes => nodes.map(n => n.dataset.messageId)"
        )
        assert len(ids) == len(set(ids)), ids

    # The page renders to a real picture (docs/screenshots.py makes the README's).
    alice_page.screenshot(path=str(tmp_path / "chat.png"))
    assert (tmp_path / "chat.png").stat().st_size > 10_000


def test_history_loads_the_latest_page_then_older_pages_on_scroll(chat_server, people, open_page):
    alice, _ = people("alice", "Alice")
    bob, bob_rest = people("bob", "Bob")
    room = bob_rest("POST", "/api/rooms/", json={"name": unique("history-")})
    rest(chat_server, alice)("POST", f"/api/rooms/{room['id']}/join/")
    texts = [f"history {n:03d}" for n in range(120)]
    with httpx.Client(
        base_url=chat_server.url, headers={"Authorization": f"Bearer {bob['access']}"}
    ) as client:
        for text in texts:
            answer = _retrying(
                lambda text=text: client.post(
                    f"/api/rooms/{room['id']}/messages/", json={"content": text}
                )
            )
            assert answer.status_code == 201, answer.text

    page = open_page(chat_server, alice["user"]["username"])
    room_item(page, room["id"]).click()
    expect(page.locator("#room-title")).to_have_text(room["name"])
    expect(messages_with(page, "history 119")).to_have_count(1)
    page.wait_for_timeout(500)  # nothing more arrives by itself
    shown = [t for t in contents(page) if t.startswith("history ")]
    assert shown == texts[-50:], shown

    box = page.locator("#messages")
    box.evaluate("node => { node.scrollTop = 0; }")
    expect(messages_with(page, "history 020")).to_have_count(1)
    shown = [t for t in contents(page) if t.startswith("history ")]
    assert len(shown) >= 100
    assert shown == texts[-len(shown) :], shown

    # The rest, and then nothing more: every message once, in order.
    deadline = time.monotonic() + WAIT_MS / 1000
    while not messages_with(page, "history 000").count() and time.monotonic() < deadline:
        box.evaluate("node => { node.scrollTop = 0; }")
        page.wait_for_timeout(300)
    expect(messages_with(page, "history 000")).to_have_count(1)
    shown = [t for t in contents(page) if t.startswith("history ")]
    assert shown == texts, shown
    ids = box.locator(".message[data-message-id]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.messageId)"
    )
    assert len(ids) == len(set(ids))


def test_page_reconnects_after_a_server_restart_and_recovers_what_it_missed(general, open_page):
    server = LiveServer(server_environment(SHUTDOWN_TIMEOUT="2"))
    server.start()
    try:
        alice = register(server, unique("alice"), "Alice")
        bob = register(server, unique("bob"), "Bob")
        bob_rest = rest(server, bob)
        bob_rest("POST", f"/api/rooms/{general.pk}/join/")
        page = open_page(server, alice["user"]["username"])
        expect(page.locator("#room-title")).to_have_text("General")
        bob_rest("POST", f"/api/rooms/{general.pk}/messages/", json={"content": "before"})
        expect(messages_with(page, "before")).to_have_count(1)

        assert server.stop() is not None
        expect(page.locator("#connection-state")).not_to_have_attribute("data-state", "connected")
        expect(page.locator("#connection-state")).to_have_attribute(
            "data-state", re.compile(r"^(reconnecting|offline|connecting)$")
        )
        # Written while the server is down: it waits in the page and goes out once.
        send(page, "sent while offline")
        expect(messages_with(page, "sent while offline")).to_have_count(1)

        restart(server)
        after = [f"after restart {n}" for n in range(5)]
        for text in after:
            bob_rest("POST", f"/api/rooms/{general.pk}/messages/", json={"content": text})

        connected(page, timeout=RECONNECT_MS)
        for text in [*after, "sent while offline"]:
            expect(messages_with(page, text)).to_have_count(1, timeout=WAIT_MS)
        expect(messages_with(page, "sent while offline")).to_have_attribute(
            "data-message-id", re.compile(r"^\d+$")
        )
        # Its broadcast came back too (acked, then delivered): still shown once.
        received(page, {"type": "message", "message.content": "sent while offline"})
        shown = contents(page)
        for text in ["before", *after, "sent while offline"]:
            assert shown.count(text) == 1, shown
        assert shown.index("after restart 0") < shown.index("after restart 4")
        stored = bob_rest("GET", f"/api/rooms/{general.pk}/messages/?limit=50")["results"]
        assert [m["content"] for m in stored].count("sent while offline") == 1

        # And it is live again.
        bob_rest("POST", f"/api/rooms/{general.pk}/messages/", json={"content": "live again"})
        expect(messages_with(page, "live again")).to_have_count(1)
    finally:
        server.stop()


def test_user_content_is_shown_as_text_never_run(chat_server, people, open_page):
    alice, _ = people("alice", "Alice")
    bob, _ = people("bob", XSS_NAME)
    alice_page = open_page(chat_server, alice["user"]["username"])
    bob_page = open_page(chat_server, bob["user"]["username"])

    # A message.
    send(alice_page, XSS)
    on_bob = messages_with(bob_page, XSS)
    expect(on_bob).to_have_count(1)
    expect(on_bob.locator(".message-content")).to_have_text(XSS)

    # A display name: on messages, in the member list, in the typing indicator.
    send(bob_page, "hello from bob")
    from_bob = messages_with(alice_page, "hello from bob")
    expect(from_bob.locator(".message-sender")).to_have_text(XSS_NAME)
    expect(alice_page.locator("#member-list")).to_contain_text(XSS_NAME)
    bob_page.locator("#message-input").press_sequentially("typing")
    expect(alice_page.locator("#typing-indicator")).to_contain_text(f"{XSS_NAME} is typing")

    # A room name.
    form = alice_page.locator("form#new-room-form")
    open_details(form)
    form.locator("input[name=name]").fill(XSS)
    form.locator("[type=submit]").click()
    expect(alice_page.locator("#room-title")).to_have_text(XSS)
    expect(alice_page.locator("#room-list .room-name").filter(has_text=XSS)).to_have_count(1)
    bob_page.locator("#browse-rooms").click()
    expect(bob_page.locator("#public-rooms li[data-room-id]").filter(has_text=XSS)).to_have_count(1)

    alice_page.wait_for_timeout(300)  # an injected <img> would have failed to load by now
    no_xss(alice_page)
    no_xss(bob_page)


def test_typing_edits_deletes_and_reactions_reach_the_other_user(chat_server, people, open_page):
    alice, _ = people("alice", "Alice")
    bob, _ = people("bob", "Bob")
    alice_page = open_page(chat_server, alice["user"]["username"])
    bob_page = open_page(chat_server, bob["user"]["username"])

    # Typing shows on the other page (never the typist's own), and stops with the send.
    bob_page.locator("#message-input").press_sequentially("let me think")
    expect(alice_page.locator("#typing-indicator")).to_contain_text("Bob is typing")
    expect(bob_page.locator("#typing-indicator")).not_to_contain_text("is typing")
    bob_page.locator("#message-input").press("Enter")
    # On bob's "stopped typing", at once: the page would also clear it when the "typing"
    # it showed expires (5 s), which any wait longer than that cannot tell apart.
    received(alice_page, {"type": "typing", "user.id": bob["user"]["id"], "is_typing": False})
    assert "Bob is typing" not in alice_page.locator("#typing-indicator").text_content()

    send(alice_page, "first draft")
    mine = messages_with(alice_page, "first draft")
    expect(mine).to_have_attribute("data-message-id", re.compile(r"^\d+$"))
    message_id = mine.get_attribute("data-message-id")
    theirs = bob_page.locator(f'#messages .message[data-message-id="{message_id}"]')
    expect(theirs.locator(".message-content")).to_have_text("first draft")
    expect(theirs.locator(".edit-button")).to_have_count(0)
    expect(theirs.locator(".delete-button")).to_have_count(0)

    # Edit: Escape cancels, Enter saves.
    hover_click(mine, ".edit-button")
    editor = alice_page.locator("#messages textarea.edit-input")
    expect(editor).to_have_value("first draft")
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(mine.locator(".message-content")).to_have_text("first draft")
    hover_click(mine, ".edit-button")
    editor.fill("final wording")
    editor.press("Enter")
    expect(editor).to_have_count(0)
    expect(theirs.locator(".message-content")).to_have_text("final wording")
    expect(theirs.locator(".edited-mark")).to_have_count(1)
    expect(
        alice_page.locator(f'#messages .message[data-message-id="{message_id}"] .edited-mark')
    ).to_have_count(1)

    # A reaction by bob shows on alice's page; bob toggles it off again.
    hover_click(theirs, ".react-button")
    picker = bob_page.locator(".emoji-picker")
    emoji = picker.locator("button[data-emoji]").first.get_attribute("data-emoji")
    picker.locator(f'button[data-emoji="{emoji}"]').click()
    on_alice = alice_page.locator(
        f'#messages .message[data-message-id="{message_id}"] .reaction[data-emoji="{emoji}"]'
    )
    expect(on_alice.locator(".reaction-count")).to_have_text("1")
    own = theirs.locator(f'.reaction[data-emoji="{emoji}"]')
    expect(own.locator(".reaction-count")).to_have_text("1")
    own.click()
    expect(on_alice).to_have_count(0)
    expect(own).to_have_count(0)

    # Delete (after confirming): the message keeps its place, marked deleted, on both pages.
    alice_page.once("dialog", lambda dialog: dialog.accept())
    hover_click(
        alice_page.locator(f'#messages .message[data-message-id="{message_id}"]'), ".delete-button"
    )
    expect(theirs).to_have_class(re.compile(r"\bdeleted\b"))
    expect(theirs).not_to_contain_text("final wording")
    expect(alice_page.locator(f'#messages .message[data-message-id="{message_id}"]')).to_have_class(
        re.compile(r"\bdeleted\b")
    )


def test_unread_badge_counts_other_rooms_and_clears_when_opened(chat_server, people, open_page):
    _, alice_rest = people("alice", "Alice")
    bob, bob_rest = people("bob", "Bob")
    room = alice_rest("POST", "/api/rooms/", json={"name": unique("side-")})
    bob_rest("POST", f"/api/rooms/{room['id']}/join/")

    bob_page = open_page(chat_server, bob["user"]["username"])
    expect(bob_page.locator("#room-title")).to_have_text("General")
    badge = room_item(bob_page, room["id"]).locator(".unread-badge")
    expect(badge).to_be_hidden()
    expect(badge).to_have_attribute("hidden", "")

    alice_rest("POST", f"/api/rooms/{room['id']}/messages/", json={"content": "psst, bob"})
    expect(badge).to_have_text("1")
    expect(badge).to_be_visible()

    room_item(bob_page, room["id"]).click()
    expect(bob_page.locator("#room-title")).to_have_text(room["name"])
    expect(messages_with(bob_page, "psst, bob")).to_have_count(1)
    expect(badge).to_be_hidden()

    # The server was told: the count stays cleared after a reload.
    deadline = time.monotonic() + WAIT_MS / 1000
    while bob_rest("GET", f"/api/rooms/{room['id']}/")["unread_count"] and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert bob_rest("GET", f"/api/rooms/{room['id']}/")["unread_count"] == 0
    bob_page.reload()
    connected(bob_page)
    expect(room_item(bob_page, room["id"]).locator(".unread-badge")).to_be_hidden()


def test_direct_message_reaches_the_other_user_and_lists_the_room(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    bob, _ = people("bob", "Bob")
    alice_page = open_page(chat_server, alice["user"]["username"])
    bob_page = open_page(chat_server, bob["user"]["username"])

    form = alice_page.locator("form#new-direct-form")
    open_details(form)
    form.locator("input[name=username]").fill(bob["user"]["username"])
    form.locator("[type=submit]").click()
    expect(alice_page.locator("#room-title")).to_contain_text(
        re.compile(rf"Bob|{bob['user']['username']}")
    )
    direct = alice_rest("POST", "/api/direct/", json={"user_id": bob["user"]["id"]})
    assert direct["kind"] == "direct"
    expect(room_item(alice_page, direct["id"])).to_have_count(1)
    send(alice_page, "just between us")
    expect(messages_with(alice_page, "just between us")).to_have_attribute(
        "data-message-id", re.compile(r"^\d+$")
    )

    # Bob's page learns of the room while open (the server tells his sockets `room_added`),
    # with alice shown online.
    item = room_item(bob_page, direct["id"])
    expect(item).to_have_count(1)
    expect(item.locator(".unread-badge")).to_have_text("1")
    expect(item.locator(".room-name")).to_contain_text(
        re.compile(rf"Alice|{alice['user']['username']}")
    )
    expect(item.locator(".presence-dot")).to_have_class(re.compile(r"\bonline\b"))
    item.click()
    expect(messages_with(bob_page, "just between us")).to_have_count(1)
    send(bob_page, "agreed")
    expect(messages_with(alice_page, "agreed")).to_have_count(1)


def test_shift_enter_adds_a_line_and_enter_sends(chat_server, general, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    page = open_page(chat_server, alice["user"]["username"])
    box = page.locator("#message-input")
    box.click()
    box.press_sequentially("line one")
    box.press("Shift+Enter")
    box.press_sequentially("line two")
    expect(box).to_have_value("line one\nline two")
    page.wait_for_timeout(300)
    assert not [t for t in contents(page) if "line one" in t]

    box.press("Enter")
    expect(box).to_have_value("")
    sent = messages_with(page, "line one\nline two")
    expect(sent).to_have_count(1)
    expect(sent).to_have_attribute("data-message-id", re.compile(r"^\d+$"))
    stored = alice_rest("GET", f"/api/rooms/{general.pk}/messages/?limit=5")["results"]
    assert stored[-1]["content"] == "line one\nline two"


def test_phone_width_keeps_the_composer_and_messages_usable(
    chat_server, general, people, open_page
):
    alice, _ = people("alice", "Alice")
    _, bob_rest = people("bob", "Bob")
    bob_rest("POST", f"/api/rooms/{general.pk}/join/")
    page = open_page(chat_server, alice["user"]["username"], viewport=PHONE)
    expect(page.locator("#room-title")).to_have_text("General")

    for selector in ("#messages", "#composer", "#message-input", "#send-button"):
        element = page.locator(selector)
        expect(element).to_be_visible()
        box = element.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, (selector, box)
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"] + 0.5, (selector, box)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.locator("#message-input").fill("from my phone")
    page.locator("#send-button").click()
    sent = messages_with(page, "from my phone")
    expect(sent).to_have_attribute("data-message-id", re.compile(r"^\d+$"))
    expect(sent).to_be_in_viewport()

    bob_rest("POST", f"/api/rooms/{general.pk}/messages/", json={"content": "hi from bob"})
    incoming = messages_with(page, "hi from bob")
    expect(incoming).to_be_visible()
    expect(incoming).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_attachments_and_replies(chat_server, people, open_page):
    alice, _ = people("alice", "Alice")
    bob, _ = people("bob", "Bob")
    alice_page = open_page(chat_server, alice["user"]["username"])
    bob_page = open_page(chat_server, bob["user"]["username"])

    # An image: uploaded on selection, shown as a chip, sent with the message, shown inline.
    alice_page.locator("#file-input").set_input_files(
        files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG}]
    )
    expect(alice_page.locator(".pending-attachment")).to_have_count(1)
    expect(alice_page.locator(".pending-attachment")).to_contain_text("dot.png")
    send(alice_page, "a picture")
    expect(alice_page.locator(".pending-attachment")).to_have_count(0)
    picture = messages_with(bob_page, "a picture")
    image = picture.locator(".attachment img")
    expect(image).to_have_count(1)
    bob_page.wait_for_function(
        "img => img.complete && img.naturalWidth === 4", arg=image.element_handle()
    )

    # Any other file is a link.
    alice_page.locator("#file-input").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"plain notes\n"}]
    )
    expect(alice_page.locator(".pending-attachment")).to_contain_text("notes.txt")
    send(alice_page, "some notes")
    notes = messages_with(bob_page, "some notes")
    expect(notes.locator(".attachment")).to_have_count(1)
    expect(notes.locator("a.attachment, .attachment a")).to_have_count(1)
    expect(notes.locator(".attachment img")).to_have_count(0)

    # A reply: the banner shows while replying, cancels, and the reply quotes its original.
    hover_click(picture, ".reply-button")
    banner = bob_page.locator("#reply-banner")
    expect(banner).to_be_visible()
    banner.locator("button.cancel-reply").click()
    expect(banner).to_be_hidden()
    hover_click(notes, ".reply-button")
    expect(banner).to_be_visible()
    send(bob_page, "thanks for the notes")
    expect(banner).to_be_hidden()
    for page in (alice_page, bob_page):
        reply = messages_with(page, "thanks for the notes")
        expect(reply.locator(".reply-quote")).to_contain_text("some notes")
    expect(messages_with(bob_page, "some notes").locator(".reply-quote")).to_have_count(0)


def test_create_private_and_browse_and_join_public_rooms(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    bob, _ = people("bob", "Bob")
    public = alice_rest("POST", "/api/rooms/", json={"name": unique("lobby-")})
    alice_page = open_page(chat_server, alice["user"]["username"])
    bob_page = open_page(chat_server, bob["user"]["username"])

    # Alice makes a private room: it is listed for her and opens.
    secret = unique("secret-")
    form = alice_page.locator("form#new-room-form")
    open_details(form)
    form.locator("input[name=name]").fill(secret)
    form.locator("input[name=private]").check()
    form.locator("[type=submit]").click()
    expect(alice_page.locator("#room-title")).to_have_text(secret)
    expect(alice_page.locator("#room-list .room-name").filter(has_text=secret)).to_have_count(1)
    private = next(
        r for r in alice_rest("GET", "/api/rooms/?limit=200")["results"] if r["name"] == secret
    )
    assert private["kind"] == "private"

    # Bob browses: the public room he is not in is offered, the private one is not.
    assert room_item(bob_page, public["id"]).count() == 0
    bob_page.locator("button#browse-rooms").click()
    offered = bob_page.locator(f'#public-rooms li[data-room-id="{public["id"]}"]')
    expect(offered).to_be_visible()
    expect(bob_page.locator(f'#public-rooms li[data-room-id="{private["id"]}"]')).to_have_count(0)
    expect(bob_page.locator("#public-rooms")).not_to_contain_text(secret)
    offered.locator("button.join-button").click()
    expect(room_item(bob_page, public["id"])).to_have_count(1)
    expect(bob_page.locator("#room-title")).to_have_text(public["name"])

    # Joined live: alice, in the room, sees bob's message; bob's member list has both.
    room_item(alice_page, public["id"]).click()
    expect(alice_page.locator("#room-title")).to_have_text(public["name"])
    send(bob_page, "hello lobby")
    expect(messages_with(alice_page, "hello lobby")).to_have_count(1)
    members = bob_page.locator("#member-list")
    for account in (alice, bob):
        member = members.locator(f'li[data-user-id="{account["user"]["id"]}"]')
        expect(member.locator(".presence-dot")).to_have_class(re.compile(r"\bonline\b"))
