"""The message area of the web page as a team's daily chat (SPEC 11), in a real browser.

Same ground rules as `test_web.py`, whose fixtures and helpers these tests reuse: a real
`manage.py serve`, Debian's Chromium through Playwright, users in separate browser
contexts, everything another user does goes through the server, and no ORM call from the
test's thread (Playwright's event loop runs on it). The one thing the API cannot do, back-
date a message, is done by `manage.py shell` in a process of its own.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import test_web as web
from tests.e2e.test_web import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    PNG,
    ROOT,
    Rest,
    messages_with,
    received,
    room_item,
    send,
    unique,
)
from tests.live import server_environment

# The browser and user fixtures of test_web.py, for the tests here.
open_page = web.open_page
people = web.people

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

SHOTS = Path(os.environ.get("SHOTS_DIR", "")) if os.environ.get("SHOTS_DIR") else None


def shot(page: Page, name: str) -> None:
    """A screenshot for a person to look at, when SHOTS_DIR is set."""
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def new_room(owner: Rest, *members: Rest) -> dict[str, Any]:
    room = owner("POST", "/api/rooms/", json={"name": unique("team-")})
    for member in members:
        member("POST", f"/api/rooms/{room['id']}/join/")
    return room


def post(who: Rest, room: dict[str, Any], content: str, **extra: Any) -> dict[str, Any]:
    return who("POST", f"/api/rooms/{room['id']}/messages/", json={"content": content, **extra})


def open_room(page: Page, room: dict[str, Any]) -> None:
    room_item(page, room["id"]).click()
    expect(page.locator("#room-title")).to_have_text(room["name"])


def fully_visible_messages(page: Page) -> int:
    """How many `.message` elements lie wholly inside the message pane's visible box."""
    return page.locator("#messages").evaluate(
        """box => {
            const view = box.getBoundingClientRect();
            return [...box.querySelectorAll('.message')].filter((m) => {
                const r = m.getBoundingClientRect();
                return r.top >= view.top - 0.5 && r.bottom <= view.bottom + 0.5;
            }).length;
        }"""
    )


def backdate(message: dict[str, Any], *, with_earlier: bool = False, **delta: float) -> None:
    """Move a message into the past (`with_earlier`: and the room's messages before it, as
    time follows `seq`). No API can, rightly: a management command in a process of its
    own does, against the same database as the server."""
    rows = (
        f"room_id={int(message['room'])}, seq__lte={int(message['seq'])}"
        if with_earlier
        else f"pk={int(message['id'])}"
    )
    code = (
        "from datetime import timedelta; from django.utils import timezone; "
        "from messaging.models import Message; "
        f"Message.objects.filter({rows}).update("
        f"created_at=timezone.now() - timedelta(**{json.dumps(delta)}))"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=server_environment(),
        check=True,
        timeout=120,
        capture_output=True,
    )


def message_node(page: Page, message_id: int):
    return page.locator(f'#messages .message[data-message-id="{message_id}"]')


def distance_from_bottom(page: Page) -> float:
    return page.locator("#messages").evaluate("b => b.scrollHeight - b.scrollTop - b.clientHeight")


def in_pane(page: Page, message_id: int) -> bool:
    """The message lies wholly inside the message pane's visible box."""
    return message_node(page, message_id).evaluate(
        """m => {
            const view = m.closest('#messages').getBoundingClientRect();
            const r = m.getBoundingClientRect();
            return r.top >= view.top - 1 && r.bottom <= view.bottom + 1;
        }"""
    )


# -------------------------------------------------------------------------- tests


def test_density_messages_per_screen(chat_server, people, open_page):
    """A day's chat: runs of short messages by three people. Prints how many fit on a
    1280x800 screen at the latest (the figure the README quotes; 11 before grouping)."""
    alice, alice_rest = people("alice", "Alice Archer")
    _, bob_rest = people("bob", "Bob Baker")
    _, cleo_rest = people("cleo", "Cleo Cole")
    room = new_room(alice_rest, bob_rest, cleo_rest)
    runs = [
        (alice_rest, 3),
        (bob_rest, 2),
        (cleo_rest, 1),
        (alice_rest, 2),
        (bob_rest, 4),
        (cleo_rest, 2),
        (alice_rest, 1),
        (bob_rest, 3),
        (cleo_rest, 3),
        (alice_rest, 4),
        (bob_rest, 1),
        (cleo_rest, 2),
        (alice_rest, 3),
        (bob_rest, 2),
        (cleo_rest, 4),
    ]
    n = 0
    for who, count in runs:
        for _ in range(count):
            n += 1
            post(who, room, f"status update number {n}, short as most are")
    page = open_page(chat_server, alice["user"]["username"], viewport=DESKTOP)
    open_room(page, room)
    last = messages_with(page, f"status update number {n}, short as most are")
    expect(last).to_have_count(1)
    page.locator("#messages").evaluate("b => { b.scrollTop = b.scrollHeight; }")
    page.wait_for_timeout(300)
    shown = fully_visible_messages(page)
    print(f"\nmessages per screen at 1280x800: {shown}")
    shot(page, "density-desktop")
    # Grouped: one header per run, so well over the 11 the ungrouped list showed.
    assert shown >= 18, shown
    assert page.locator("#messages .message.continued").count() == n - len(runs)


HOSTILE = [
    "[click me](javascript:window.__xss=1)",
    "[upper](JaVaScRiPt:window.__xss=1)",
    "[entity](&#106;avascript:window.__xss=1)",
    "[data](data:text/html,<script>window.__xss=1</script>)",
    "<javascript:window.__xss=1>",
    '<a href="javascript:window.__xss=1">raw link</a>',
    '<img src=x onerror="window.__xss=1">',
    "![pixel](javascript:window.__xss=1)",
    '<svg onload="window.__xss=1"></svg>',
    "```html\n<script>window.__xss=1</script>\n```",
    "`<b onmouseover=window.__xss=1>code</b>`",
]


def test_markdown_and_links_render_and_hostile_payloads_stay_inert(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    bob, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, bob_rest)
    bob_page = open_page(chat_server, bob["user"]["username"])
    open_room(bob_page, room)
    alice_page = open_page(chat_server, alice["user"]["username"])
    open_room(alice_page, room)

    send(alice_page, "**bold** and _soft_ and `code` and ~~gone~~, see https://example.com/docs")
    rich = bob_page.locator("#messages .message").filter(has_text="see https://example.com/docs")
    expect(rich).to_have_count(1)
    expect(rich.locator(".message-content strong")).to_have_text("bold")
    expect(rich.locator(".message-content em")).to_have_text("soft")
    expect(rich.locator(".message-content code")).to_have_text("code")
    expect(rich.locator(".message-content del, .message-content s")).to_have_text("gone")
    link = rich.locator(".message-content a")
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute(
        "rel", re.compile(r"\bnoopener\b.*\bnoreferrer\b|\bnoreferrer\b.*\bnoopener\b")
    )

    for payload in HOSTILE:
        post(alice_rest, room, payload)
    last = post(alice_rest, room, "after the payloads")
    for page in (alice_page, bob_page):
        expect(message_node(page, last["id"])).to_have_count(1)
        # Hover and click everything a payload could have turned into something live.
        for anchor in page.locator("#messages .message-content a").all():
            anchor.hover()
        page.wait_for_timeout(300)  # an injected <img> would have failed to load by now
        assert page.evaluate("typeof window.__xss") == "undefined"
        hrefs = page.locator("#messages a[href]").evaluate_all(
            "ns => ns.map(n => n.getAttribute('href'))"
        )
        assert all(re.match(r"^(https?:|mailto:|/)", h) for h in hrefs), hrefs
        assert (
            page.locator("#messages :is(script, img[src='x'], svg[onload], [onerror])").count() == 0
        )
        assert (
            page.evaluate(
                "[...document.querySelectorAll('*')].some(n => [...n.attributes].some("
                "a => a.value.replace(/\\s/g, '').toLowerCase().startsWith('javascript:')))"
            )
            is False
        )
    # The code block shows its text, as text.
    expect(
        bob_page.locator("#messages pre code").filter(has_text="<script>window.__xss=1</script>")
    ).to_have_count(1)
    shot(bob_page, "markdown-light")


def test_a_mention_of_me_highlights_the_message(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    bob, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, bob_rest)
    alice_page = open_page(chat_server, alice["user"]["username"])
    open_room(alice_page, room)
    bob_page = open_page(chat_server, bob["user"]["username"])
    open_room(bob_page, room)

    by_name = post(bob_rest, room, f"@{alice['user']['username']} can you look at this?")
    everyone = post(bob_rest, room, "@room standup in five")
    plain = post(bob_rest, room, "nothing for anyone")
    assert alice["user"]["id"] in by_name["mentions"], by_name
    expect(message_node(alice_page, by_name["id"])).to_have_class(re.compile(r"\bmentions-me\b"))
    expect(message_node(alice_page, by_name["id"]).locator(".mention.is-me")).to_have_text(
        f"@{alice['user']['username']}"
    )
    expect(message_node(alice_page, everyone["id"])).to_have_class(re.compile(r"\bmentions-me\b"))
    expect(message_node(alice_page, plain["id"])).not_to_have_class(re.compile(r"\bmentions-me\b"))
    # Bob wrote them: none highlights on his page.
    expect(message_node(bob_page, plain["id"])).to_have_count(1)
    assert bob_page.locator("#messages .message.mentions-me").count() == 0
    # Live too: a mention arriving while the page is open.
    send(bob_page, f"thanks @{alice['user']['username']}!")
    expect(
        alice_page.locator("#messages .message.mentions-me").filter(has_text="thanks @")
    ).to_have_count(1)
    shot(alice_page, "mention-light")
    alice_page.emulate_media(color_scheme="dark")
    shot(alice_page, "mention-dark")


def test_groups_day_separators_and_the_full_time_on_hover(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    _, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, bob_rest)
    old = post(bob_rest, room, "from three days ago")
    backdate(old, with_earlier=True, days=3)
    earlier = post(bob_rest, room, "a while ago today")
    backdate(earlier, minutes=6)
    first = post(bob_rest, room, "run one")
    second = post(bob_rest, room, "run two")
    third = post(bob_rest, room, "run three")
    alices = post(alice_rest, room, "alice breaks the run")
    again = post(bob_rest, room, "bob again")

    page = open_page(chat_server, alice["user"]["username"])
    open_room(page, room)
    expect(message_node(page, again["id"])).to_have_count(1)

    separators = page.locator("#messages .day-separator")
    expect(separators).to_have_count(2)
    stored = bob_rest("GET", f"/api/rooms/{room['id']}/messages/?limit=10")["results"]
    old_created = next(m["created_at"] for m in stored if m["id"] == old["id"])
    weekday = page.evaluate(
        "iso => new Date(iso).toLocaleDateString(undefined, {weekday: 'long'})", old_created
    )
    expect(separators.nth(0)).to_contain_text(weekday)
    expect(separators.nth(1)).to_have_text("Today")
    # Each separator stands right before the first message of its day.
    assert separators.nth(0).evaluate(
        "s => s.nextElementSibling === s.parentElement.querySelector('.message')"
    )
    assert separators.nth(1).evaluate("s => s.nextElementSibling.dataset.messageId") == str(
        earlier["id"]
    )

    continued = re.compile(r"\bcontinued\b")
    for message in (old, earlier, first, alices, again):  # a new day, 6 minutes, sender changes
        expect(message_node(page, message["id"])).not_to_have_class(continued)
        expect(message_node(page, message["id"]).locator(".message-sender")).to_be_visible()
    for message in (second, third):
        expect(message_node(page, message["id"])).to_have_class(continued)
        # Visually hidden (a 1px clip), not gone: a screen reader still reads the name.
        assert (
            message_node(page, message["id"])
            .locator(".message-head")
            .evaluate("n => n.getBoundingClientRect().width <= 1")
        )
        expect(message_node(page, message["id"]).locator(".message-gutter .avatar")).to_be_hidden()
    # The name is still there for a screen reader.
    expect(message_node(page, second["id"]).locator(".message-sender")).to_have_text("Bob")

    # The time: short, with the full date and time on hover; a grouped message shows its
    # time in the gutter while hovered.
    head_time = message_node(page, first["id"]).locator("time.message-time")
    expect(head_time).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    title = head_time.get_attribute("title") or ""
    year = page.evaluate("() => String(new Date().getFullYear())")
    assert year in title and re.search(r"\d:\d\d", title), title
    assert len(title) > len(head_time.text_content() or "") + 8, title
    gutter = message_node(page, second["id"]).locator(".gutter-time")
    expect(gutter).to_be_hidden()
    message_node(page, second["id"]).hover()
    expect(gutter).to_be_visible()
    expect(gutter).to_have_attribute("title", re.compile(year))
    shot(page, "groups-days-light")
    page.emulate_media(color_scheme="dark")
    shot(page, "groups-days-dark")


def test_new_messages_divider_and_jump_to_latest_without_yanking(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    _bob, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, bob_rest)
    seen = post(alice_rest, room, "where I left off")
    alice_rest("POST", f"/api/rooms/{room['id']}/read/", json={"message_id": seen["id"]})
    unread = [post(bob_rest, room, f"while you were away {n:02d}") for n in range(40)]

    page = open_page(chat_server, alice["user"]["username"])
    expect(room_item(page, room["id"]).locator(".unread-badge")).to_have_text("40")
    open_room(page, room)
    divider = page.locator("#messages .unread-divider")
    expect(divider).to_have_count(1)
    expect(divider).to_contain_text("New messages")
    # Right above the first unread message, which is in view; the latest is below.
    assert divider.evaluate("d => d.nextElementSibling.dataset.messageId") == str(unread[0]["id"])
    expect(message_node(page, unread[0]["id"])).to_be_in_viewport()
    jump = page.locator(".jump-latest")
    expect(jump).to_be_visible()
    expect(jump).to_contain_text(re.compile(r"^\d+ new messages?$"))
    shot(page, "divider-jump-light")

    jump.click()
    expect(message_node(page, unread[-1]["id"])).to_be_in_viewport()
    expect(jump).to_be_hidden()
    assert distance_from_bottom(page) < 48

    # Scrolled up, a new message does not move the view; the button counts it.
    page.locator("#messages").evaluate("b => { b.scrollTop = 0; }")
    expect(jump).to_be_visible()
    expect(jump).to_have_text("Jump to latest")  # nothing new below yet
    before = page.locator("#messages").evaluate("b => b.scrollTop")
    late = post(bob_rest, room, "one more thing")
    expect(message_node(page, late["id"])).to_have_count(1)
    expect(jump).to_have_text("1 new message")
    page.wait_for_timeout(300)
    assert page.locator("#messages").evaluate("b => b.scrollTop") == before
    expect(message_node(page, late["id"])).not_to_be_in_viewport()
    jump.click()
    expect(message_node(page, late["id"])).to_be_in_viewport()
    expect(jump).to_be_hidden()
    # At the bottom, new messages keep it there.
    latest = post(bob_rest, room, "and the very last")
    expect(message_node(page, latest["id"])).to_be_in_viewport()


def test_a_reply_quote_leads_to_its_original_loading_history_around_it(
    chat_server, people, open_page
):
    alice, alice_rest = people("alice", "Alice")
    _bob, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, bob_rest)
    original = post(bob_rest, room, "the original question")
    for n in range(130):
        post(bob_rest, room, f"filler {n:03d}")
    reply = post(alice_rest, room, "the answer, much later", reply_to=original["id"])

    page = open_page(chat_server, alice["user"]["username"])
    open_room(page, room)
    expect(message_node(page, reply["id"])).to_have_count(1)
    expect(message_node(page, original["id"])).to_have_count(0)  # outside the loaded page
    quote = message_node(page, reply["id"]).locator(".reply-quote")
    expect(quote).to_have_attribute("data-reply-to", str(original["id"]))
    quote.click()

    target = message_node(page, original["id"])
    expect(target).to_have_count(1)
    expect(target).to_be_in_viewport()
    expect(target).to_have_class(re.compile(r"\bflash\b"))
    expect(target).not_to_have_class(re.compile(r"\bflash\b"), timeout=5000)
    expect(target.locator(".message-content")).to_have_text("the original question")
    # A window of the past: the way back to the present is offered, and taken.
    jump = page.locator(".jump-latest")
    expect(jump).to_be_visible()
    jump.click()
    expect(message_node(page, reply["id"])).to_be_in_viewport()
    shown = page.locator("#messages .message .message-content").evaluate_all(
        "ns => ns.map(n => n.textContent)"
    )
    fillers = [t for t in shown if t.startswith("filler ")]
    assert fillers == sorted(fillers) and len(fillers) == len(set(fillers)), fillers


def test_every_message_action_works_from_the_keyboard(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    bob, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, bob_rest)
    bob_page = open_page(chat_server, bob["user"]["username"])
    open_room(bob_page, room)
    theirs = post(bob_rest, room, "a question from bob")
    page = open_page(chat_server, alice["user"]["username"])
    open_room(page, room)
    box = page.locator("#message-input")
    expect(box).to_be_focused()  # the composer has the keyboard when a room opens

    page.keyboard.type("my first words")
    page.keyboard.press("Enter")
    mine = messages_with(page, "my first words")
    expect(mine).to_have_attribute("data-message-id", re.compile(r"^\d+$"))

    # Up in the empty composer edits my last message; Enter saves, focus comes back.
    page.keyboard.press("ArrowUp")
    editor = page.locator("#messages textarea.edit-input")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("my first words")
    page.keyboard.press("Control+a")
    page.keyboard.type("my edited words")
    page.keyboard.press("Enter")
    expect(editor).to_have_count(0)
    expect(messages_with(bob_page, "my edited words")).to_have_count(1)
    expect(box).to_be_focused()

    # Into the list (Shift+Tab back from the composer), Up to a message, R to reply.
    page.locator("#messages").focus()
    page.keyboard.press("ArrowUp")
    focused = page.locator("#messages .message:focus")
    expect(focused.locator(".message-content")).to_have_text("my edited words")
    expect(focused.locator(".message-actions")).to_be_visible()  # the toolbar shows on focus
    shot(page, "keyboard-focus-light")
    page.keyboard.press("ArrowUp")
    expect(focused).to_have_attribute("data-message-id", str(theirs["id"]))
    expect(focused.locator(".edit-button")).to_have_count(0)  # not mine
    page.keyboard.press("r")
    expect(page.locator("#reply-banner")).to_be_visible()
    expect(box).to_be_focused()
    page.keyboard.type("answering by keyboard")
    page.keyboard.press("Enter")
    reply = messages_with(bob_page, "answering by keyboard")
    expect(reply.locator(".reply-quote")).to_contain_text("a question from bob")
    received(page, {"type": "message", "message.content": "answering by keyboard"})

    # React: Enter goes into the toolbar, its first button opens the picker, arrows move.
    page.locator("#messages").focus()
    page.keyboard.press("ArrowUp")
    expect(focused.locator(".message-content")).to_have_text("answering by keyboard")
    page.keyboard.press("ArrowUp")
    expect(focused.locator(".message-content")).to_have_text("my edited words")
    page.keyboard.press("ArrowUp")
    expect(focused).to_have_attribute("data-message-id", str(theirs["id"]))
    page.keyboard.press("Enter")
    expect(page.locator("#messages .message:focus-within .react-button")).to_be_focused()
    page.keyboard.press("Enter")
    picker = page.locator(".emoji-picker")
    expect(picker).to_be_visible()
    page.keyboard.press("ArrowRight")
    chosen = page.evaluate("document.activeElement.dataset.emoji")
    assert chosen and chosen != picker.locator("button").first.get_attribute("data-emoji")
    page.keyboard.press("Enter")
    expect(picker).to_have_count(0)
    chip = bob_page.locator(
        f'#messages .message[data-message-id="{theirs["id"]}"] .reaction[data-emoji="{chosen}"]'
    )
    expect(chip.locator(".reaction-count")).to_have_text("1")
    expect(focused).to_have_attribute("data-message-id", str(theirs["id"]))  # focus stays

    # E edits my message from the list, Escape cancels back to it; Delete deletes it.
    page.keyboard.press("End")
    expect(focused.locator(".message-content")).to_have_text("answering by keyboard")
    page.keyboard.press("e")
    expect(editor).to_be_focused()
    page.keyboard.press("Escape")
    expect(editor).to_have_count(0)
    expect(focused.locator(".message-content")).to_have_text("answering by keyboard")
    page.once("dialog", lambda dialog: dialog.accept())
    reply_id = focused.get_attribute("data-message-id")
    page.keyboard.press("Delete")
    expect(bob_page.locator(f'#messages .message[data-message-id="{reply_id}"]')).to_have_class(
        re.compile(r"\bdeleted\b")
    )
    # Escape leaves the list for the composer.
    page.locator("#messages").focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Escape")
    expect(box).to_be_focused()


def test_emoji_picker_in_the_composer_by_keyboard_and_mouse(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    room = new_room(alice_rest)
    page = open_page(chat_server, alice["user"]["username"])
    open_room(page, room)
    box = page.locator("#message-input")
    box.fill("ship it ")
    opener = page.locator("#emoji-button")
    opener.focus()
    page.keyboard.press("Enter")
    picker = page.locator(".emoji-picker")
    expect(picker).to_be_visible()
    expect(opener).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")  # closes, focus back on the opener
    expect(picker).to_have_count(0)
    expect(opener).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowDown")  # a row down: the ninth
    page.keyboard.press("End")
    last = page.evaluate("document.activeElement.dataset.emoji")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    second = page.evaluate("document.activeElement.dataset.emoji")
    assert last and second and last != second
    page.keyboard.press("Enter")
    expect(picker).to_have_count(0)
    expect(box).to_have_value(f"ship it {second}")
    expect(box).to_be_focused()
    opener.click()
    shot(page, "emoji-picker-light")
    page.emulate_media(color_scheme="dark")
    shot(page, "emoji-picker-dark")
    picker.locator(f'button[data-emoji="{last}"]').click()
    expect(box).to_have_value(f"ship it {second}{last}")
    page.keyboard.press("Enter")
    expect(messages_with(page, f"ship it {second}{last}")).to_have_attribute(
        "data-message-id", re.compile(r"^\d+$")
    )


# A file put on the page's clipboard or dropped on it, as a user's paste or drag would:
# a DataTransfer holding a File, in the event the browser fires.
def _file_event(page: Page, selector: str, kind: str, name: str, data: bytes, mime: str) -> None:
    page.locator(selector).evaluate(
        """(node, [kind, name, bytes, mime]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            if (kind === "paste") {
                const init = { clipboardData: transfer, bubbles: true, cancelable: true };
                node.dispatchEvent(new ClipboardEvent("paste", init));
            } else {
                for (const type of ["dragenter", "dragover", "drop"]) {
                    const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
                    node.dispatchEvent(new DragEvent(type, init));
                }
            }
        }""",
        [kind, name, list(data), mime],
    )


def test_paste_and_drop_upload_through_the_composer(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    bob, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, bob_rest)
    bob_page = open_page(chat_server, bob["user"]["username"])
    open_room(bob_page, room)
    page = open_page(chat_server, alice["user"]["username"])
    open_room(page, room)

    _file_event(page, "#message-input", "paste", "pasted.png", PNG, "image/png")
    chips = page.locator(".pending-attachment")
    expect(chips).to_have_count(1)
    expect(chips).to_contain_text("pasted.png")
    expect(page.locator("#message-input")).to_have_value("")  # a file, not text
    _file_event(page, "#messages", "drop", "dropped.txt", b"dropped notes\n", "text/plain")
    expect(chips).to_have_count(2)
    expect(chips.nth(1)).to_contain_text("dropped.txt")
    expect(page.locator("#composer")).not_to_have_class(re.compile(r"\bdrop-target\b"))
    send(page, "two files")
    expect(chips).to_have_count(0)
    sent = messages_with(bob_page, "two files")
    image = sent.locator(".attachment img")
    expect(image).to_have_count(1)
    bob_page.wait_for_function(
        "img => img.complete && img.naturalWidth === 4", arg=image.element_handle()
    )
    expect(sent.locator("a.attachment-file")).to_contain_text("dropped.txt")


def test_a_loading_picture_keeps_the_newest_message_in_view(chat_server, people, open_page):
    _alice, alice_rest = people("alice", "Alice")
    bob, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, bob_rest)
    for n in range(30):
        last = post(alice_rest, room, f"earlier talk {n:02d}")
    bob_rest("POST", f"/api/rooms/{room['id']}/read/", json={"message_id": last["id"]})
    page = open_page(chat_server, bob["user"]["username"])
    open_room(page, room)
    expect(messages_with(page, "earlier talk 29")).to_be_in_viewport()

    # Pictures load slowly here: the message is drawn long before its picture arrives.
    page.route(
        re.compile(r"/api/attachments/\d+/"),
        lambda route: (page.wait_for_timeout(800), route.continue_()),
    )
    stored = alice_rest(
        "POST", "/api/attachments/", files={"file": ("tall.png", web._png(300, 900), "image/png")}
    )
    with_picture = post(alice_rest, room, "a tall picture", attachments=[stored["id"]])
    node = message_node(page, with_picture["id"])
    expect(node).to_have_count(1)
    image = node.locator(".attachment img")
    page.wait_for_function(
        "img => img.complete && img.naturalHeight === 900", arg=image.element_handle()
    )
    page.wait_for_timeout(200)
    assert in_pane(page, with_picture["id"])
    assert distance_from_bottom(page) < 48
    # The box was the same size before and after the picture came.
    box = node.locator(".attachment-image").bounding_box()
    assert box is not None and 150 <= box["height"] <= 200, box
    shot(page, "picture-light")


ASKED_ICONS = """menu users x search gear bell bell-off at hash lock reply edit trash smile
    paperclip send arrow-down chevron-down user log-out plus check"""


def test_the_chrome_uses_svg_icons_not_emoji(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    room = new_room(alice_rest)
    post(alice_rest, room, "hello 👋")  # user content may hold emoji: it is not chrome
    page = open_page(chat_server, alice["user"]["username"])
    open_room(page, room)
    messages_with(page, "hello 👋").hover()
    glyphs = page.evaluate(
        """() => {
            const user = "#messages :is(.message-content, .message-sender, .reaction), "
                + ".emoji-picker, .room-name, #room-title, #room-description, #member-list, "
                + "#public-rooms, .me-name, .reply-text";
            const found = [];
            for (const node of document.querySelectorAll("body *")) {
                if (node.closest(user) || node.closest("script, style, template")) continue;
                for (const child of node.childNodes) {
                    const text = child.nodeType === 3 ? child.textContent : "";
                    if (/\\p{Extended_Pictographic}/u.test(text)) {
                        found.push(`${node.tagName}: ${child.textContent.trim()}`);
                    }
                }
                const label = node.getAttribute("aria-label") || "";
                if (/\\p{Extended_Pictographic}/u.test(label)) found.push(`label ${label}`);
            }
            return found;
        }"""
    )
    assert glyphs == [], glyphs
    for selector in (
        "#attach-button",
        "#emoji-button",
        "#send-button",
        ".message .react-button",
        ".message .reply-button",
        ".message .edit-button",
        ".message .delete-button",
    ):
        use = page.locator(f"{selector} svg use").first
        expect(use).to_have_attribute("href", re.compile(r"icons\.svg#[a-z-]+$"))
    # The sprite is served, and every icon the page uses is in it.
    hrefs = page.locator("svg use").evaluate_all("us => us.map(u => u.getAttribute('href'))")
    wanted = {href.split("#")[1] for href in hrefs}
    sprite = page.request.get(f"{chat_server.url}/static/chat/icons.svg")
    assert sprite.ok and "image/svg" in sprite.headers["content-type"]
    symbols = set(re.findall(r'<symbol id="([^"]+)"', sprite.text()))
    assert wanted <= symbols, wanted - symbols
    assert set(ASKED_ICONS.split()) <= symbols


def test_phone_width_and_dark_mode_read_well(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    _bob, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, bob_rest)
    post(bob_rest, room, "Morning! The **build** is green, see https://example.com/ci/1234")
    post(bob_rest, room, f"@{alice['user']['username']} can you review `chat/messages.js`?")
    first = post(alice_rest, room, "On it.")
    post(alice_rest, room, "> quoting the plan\n\n- one\n- two", reply_to=first["id"])
    post(bob_rest, room, "```\nlong_code_line = 'does not widen the page' * 20\n```")
    page = open_page(chat_server, alice["user"]["username"], viewport=PHONE)
    page.evaluate(f"() => import('/static/chat/rooms.js').then(m => m.openRoom({room['id']}))")
    expect(page.locator("#room-title")).to_have_text(room["name"])
    expect(page.locator("#messages pre")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    last = page.locator("#messages .message").last
    expect(last).to_be_in_viewport()
    shot(page, "phone-light")
    page.emulate_media(color_scheme="dark")
    shot(page, "phone-dark")
    page.set_viewport_size(DESKTOP)
    shot(page, "desktop-dark")
