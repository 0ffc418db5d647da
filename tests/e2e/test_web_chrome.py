"""The chrome of the web page as a team's daily chat (SPEC 11, 12), in a real browser:
notifications, the tab title and favicon, search, room settings, the profile, the phone
drawers, keyboard shortcuts, unread badges across reconnects and tabs.

Same ground rules as `test_web.py`, whose fixtures and helpers these tests reuse: a real
`manage.py serve`, Debian's Chromium through Playwright, users in separate browser
contexts, everything another user does goes through the server, and no ORM call from the
test's thread. Browser features the test cannot click through (the permission prompt of
desktop notifications) are replaced in the page by a recording stub installed before the
page's scripts run (`add_init_script`).
"""

import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e import test_web as web
from tests.e2e.test_web import (
    CHROMIUM,
    DESKTOP,
    PASSWORD,
    PHONE,
    PNG,
    Rest,
    connected,
    messages_with,
    register,
    rest,
    room_item,
    send,
    unique,
)
from tests.live import LiveServer, server_environment

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

# The fixtures of test_web.py, shared (assigned, so pytest finds them in this module).
open_page = web.open_page
people = web.people

SHOTS = Path(os.environ["SHOTS_DIR"]) if os.environ.get("SHOTS_DIR") else None

# `Notification` as a page sees it, recording what the page does with it: permission is
# "default" until the page asks (on the user's click), then "granted".
NOTIFICATION_STUB = """
(() => {
  window.__notifications = [];
  window.__permissionRequests = 0;
  // Kept by the browser profile across reloads, as a real permission is.
  let permission = localStorage.getItem("stub-permission") || "default";
  class RecordingNotification {
    constructor(title, options = {}) {
      window.__notifications.push({ title, body: options.body || "", tag: options.tag || "" });
      this.onclick = null;
    }
    close() {}
    static get permission() { return permission; }
    static async requestPermission() {
      window.__permissionRequests += 1;
      permission = "granted";
      localStorage.setItem("stub-permission", permission);
      return permission;
    }
  }
  window.Notification = RecordingNotification;
})();
"""

# The page's sockets, and a switch that makes new ones fail to connect (a network that is
# down) so a test decides when the page gets back.
SOCKET_SWITCH = r"""
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__socketsBlocked = false;
  window.WebSocket = new Proxy(Native, {
    construct(target, args) {
      // A path the server refuses (within the page's connect-src, unlike another port).
      const url = window.__socketsBlocked ? args[0].replace(/\/ws\/.*$/, "/ws-blocked/") : args[0];
      const socket = Reflect.construct(target, [url, ...args.slice(1)]);
      window.__sockets.push(socket);
      return socket;
    },
  });
})();
"""


def shot(page: Page, name: str) -> None:
    """A screenshot for a person to look at, when SHOTS_DIR is set."""
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def with_script(page: Page, script: str) -> Page:
    """Install `script` before the page's own scripts, from the next load on: reload."""
    page.context.add_init_script(script)
    page.reload()
    connected(page)
    return page


def new_room(owner: Rest, kind: str = "public", *members: Rest) -> dict[str, Any]:
    room = owner("POST", "/api/rooms/", json={"name": unique("team-"), "kind": kind})
    for member in members:
        member("POST", f"/api/rooms/{room['id']}/join/")
    return room


def badge(page: Page, room_id: int, kind: str = "unread") -> Any:
    return room_item(page, room_id).locator(f".{kind}-badge")


def notifications(page: Page) -> list[dict[str, str]]:
    return page.evaluate("window.__notifications")


def open_settings(page: Page) -> Any:
    page.locator("#room-settings-button").click()
    dialog = page.locator("dialog#room-settings")
    expect(dialog).to_be_visible()
    return dialog


# -------------------------------------------------------------------------- tests


def test_favicon_answers_and_the_page_links_its_two_pictures(chat_server, people, open_page):
    answer = httpx.get(f"{chat_server.url}/favicon.ico", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.content.startswith(b"<svg")
    alice, _ = people("alice", "Alice")
    page = open_page(chat_server, alice["user"]["username"])
    link = page.locator("link#favicon")
    for attribute in ("href", "data-unread-href"):
        url = link.get_attribute(attribute)
        assert url and url.endswith(".svg")
        assert httpx.get(f"{chat_server.url}{url}", timeout=10).status_code == 200
    # Icons, not emoji glyphs, in the chrome.
    assert page.locator(".room-head button svg.icon").count() >= 3
    for text in ("☰", "👥"):
        assert text not in page.locator(".room-head").inner_text()


def test_notifications_title_and_favicon_count_dms_and_mentions(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice Liddell")
    _, bob_rest = people("bob", "Bob Builder")
    room = new_room(bob_rest, "public", alice_rest)
    muted_room = new_room(bob_rest, "public", alice_rest)
    page = with_script(open_page(chat_server, alice["user"]["username"]), NOTIFICATION_STUB)
    expect(page.locator("#room-title")).to_have_text("General")
    expect(page).to_have_title("General · Chat")
    favicon = page.locator("link#favicon")
    # Nothing is asked on load; the bell asks, on the user's click.
    assert page.evaluate("window.__permissionRequests") == 0
    toggle = page.locator("#notify-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("window.__permissionRequests") == 1

    # Alice mutes one room: it shows no unread badge and counts only mentions.
    alice_rest("PATCH", f"/api/rooms/{muted_room['id']}/membership/", json={"muted": True})
    page.reload()
    connected(page)
    expect(room_item(page, muted_room["id"])).to_have_class(re.compile(r"\bmuted\b"))

    # A plain message in another room: a badge and the title count, no notification.
    bob_rest("POST", f"/api/rooms/{room['id']}/messages/", json={"content": "plain news"})
    expect(badge(page, room["id"])).to_have_text("1")
    expect(page).to_have_title("(1) General · Chat")
    expect(favicon).to_have_attribute("data-state", "unread")
    assert favicon.get_attribute("href") == favicon.get_attribute("data-unread-href")
    # In the muted room: no badge, no count.
    bob_rest("POST", f"/api/rooms/{muted_room['id']}/messages/", json={"content": "muted news"})
    page.wait_for_timeout(500)
    expect(badge(page, muted_room["id"])).to_be_hidden()
    expect(page).to_have_title("(1) General · Chat")
    assert notifications(page) == []

    # A direct message notifies, titled by the sender's display name; the room is listed
    # under the peer's name with their initials.
    direct = bob_rest("POST", "/api/direct/", json={"user_id": alice["user"]["id"]})
    bob_rest("POST", f"/api/rooms/{direct['id']}/messages/", json={"content": "psst alice"})
    page.wait_for_function("() => window.__notifications.length === 1")
    assert notifications(page)[0]["title"] == "Bob Builder"
    assert notifications(page)[0]["body"] == "psst alice"
    expect(room_item(page, direct["id"]).locator(".room-name")).to_have_text("Bob Builder")
    expect(room_item(page, direct["id"]).locator(".avatar")).to_have_text("BB")
    expect(page).to_have_title("(2) General · Chat")

    # A mention notifies, in a muted room too, and shows there as a mention badge.
    alice_name = alice["user"]["username"]
    bob_rest(
        "POST", f"/api/rooms/{muted_room['id']}/messages/", json={"content": f"hey @{alice_name}"}
    )
    page.wait_for_function("() => window.__notifications.length === 2")
    assert notifications(page)[1]["title"] == f"Bob Builder in {muted_room['name']}"
    expect(badge(page, muted_room["id"], "mention")).to_have_text("@1")
    expect(badge(page, muted_room["id"])).to_be_hidden()
    expect(page).to_have_title("(3) General · Chat")

    # Alice's own messages and the room she reads never notify.
    bob_rest("POST", f"/api/rooms/{room['id']}/messages/", json={"content": f"@{alice_name} hi"})
    page.wait_for_function("() => window.__notifications.length === 3")
    room_item(page, room["id"]).click()
    expect(page).to_have_title(f"(2) {room['name']} · Chat")
    bob_rest("POST", f"/api/rooms/{room['id']}/messages/", json={"content": f"@{alice_name} seen"})
    expect(messages_with(page, f"@{alice_name} seen")).to_have_count(1)
    send(page, f"me, @{alice_name}")
    expect(messages_with(page, f"me, @{alice_name}")).to_have_count(1)
    page.wait_for_timeout(500)
    assert len(notifications(page)) == 3

    # Reading everything clears the count and the favicon's badge.
    room_item(page, direct["id"]).click()
    expect(badge(page, direct["id"])).to_be_hidden()
    room_item(page, muted_room["id"]).click()
    expect(badge(page, muted_room["id"], "mention")).to_be_hidden()
    expect(page).to_have_title(f"{muted_room['name']} · Chat")
    expect(favicon).to_have_attribute("data-state", "read")

    # The sound is off until turned on, and the choice is kept.
    page.locator("#profile-button").click()
    sound = page.locator("#sound-toggle")
    expect(sound).not_to_be_checked()
    sound.check()
    page.reload()
    connected(page)
    page.locator("#profile-button").click()
    expect(page.locator("#sound-toggle")).to_be_checked()
    expect(page.locator("#notify-checkbox")).to_be_checked()


def test_search_jumps_to_the_message_in_its_room(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    _bob, bob_rest = people("bob", "Bob")
    room = new_room(bob_rest, "public", alice_rest)
    word = unique("needle")
    found = bob_rest(
        "POST", f"/api/rooms/{room['id']}/messages/", json={"content": f"the {word} is here"}
    )
    for n in range(60):  # the message is not on the room's latest page
        bob_rest("POST", f"/api/rooms/{room['id']}/messages/", json={"content": f"later {n}"})
    page = open_page(chat_server, alice["user"]["username"])
    page.locator("#messages").focus()
    page.keyboard.press("/")
    expect(page.locator("#search-input")).to_be_focused()
    page.keyboard.type(word)
    page.keyboard.press("Enter")
    result = page.locator("#search-results .search-result")
    expect(result).to_have_count(1)
    expect(result.locator(".result-room")).to_have_text(room["name"])
    expect(result.locator(".result-sender")).to_have_text("Bob")
    expect(result.locator(".result-snippet")).to_have_text(f"the {word} is here")
    expect(result.locator("time")).to_have_attribute("datetime", found["created_at"])
    shot(page, "search-results")
    result.click()
    expect(page.locator("#search-results")).to_be_hidden()
    expect(page.locator("#room-title")).to_have_text(room["name"])
    target = page.locator(f'#messages .message[data-message-id="{found["id"]}"]')
    expect(target).to_be_visible()
    expect(target).to_be_in_viewport()

    # Escape closes the results.
    page.locator("#search-input").fill(word)
    page.locator("#search-input").press("Enter")
    expect(page.locator("#search-results")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#search-results")).to_be_hidden()


def test_room_settings_invite_rename_archive_reach_the_other_user_live(
    chat_server, people, open_page
):
    alice, alice_rest = people("alice", "Alice")
    bob, _bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, "private")
    alice_page = open_page(chat_server, alice["user"]["username"])
    bob_page = open_page(chat_server, bob["user"]["username"])
    room_item(alice_page, room["id"]).click()
    expect(room_item(bob_page, room["id"])).to_have_count(0)

    dialog = open_settings(alice_page)
    shot(alice_page, "room-settings")
    invite = dialog.locator("#invite-input")
    invite.fill(bob["user"]["username"])
    dialog.locator("#invite-form button[type=submit]").click()
    expect(
        dialog.locator(f'#settings-members li[data-user-id="{bob["user"]["id"]}"]')
    ).to_have_count(1)
    # Bob's page lists the room at once, and he can open it and read.
    expect(room_item(bob_page, room["id"])).to_have_count(1)
    room_item(bob_page, room["id"]).click()
    expect(bob_page.locator("#room-title")).to_have_text(room["name"])
    # Bob, a member, sees no management controls.
    bob_dialog = open_settings(bob_page)
    expect(bob_dialog.locator("#mute-toggle")).to_be_visible()
    expect(
        bob_dialog.locator("#room-about-form, #invite-form, #archive-button, #delete-button")
    ).to_have_count(0)
    expect(bob_dialog.locator("#leave-button")).to_be_visible()
    bob_page.keyboard.press("Escape")
    expect(bob_dialog).to_be_hidden()

    # Alice makes Bob an admin: his role changes on both pages.
    dialog.locator(
        f'#settings-members li[data-user-id="{bob["user"]["id"]}"] select'
    ).select_option("admin")
    expect(
        bob_page.locator(f'#member-list li[data-user-id="{bob["user"]["id"]}"] .role')
    ).to_have_text("admin")

    # Rename and topic, live on Bob's page.
    new_name = unique("renamed-")
    dialog.locator("#rs-name").fill(new_name)
    dialog.locator("#rs-topic").fill("Where the team talks")
    dialog.locator("#room-about-form button[type=submit]").click()
    expect(alice_page.locator("#room-title")).to_have_text(new_name)
    expect(bob_page.locator("#room-title")).to_have_text(new_name)
    expect(bob_page.locator("#room-description")).to_have_text("Where the team talks")
    expect(room_item(bob_page, room["id"]).locator(".room-name")).to_have_text(new_name)

    # Archive: Bob's composer turns read-only without a reload; unarchive gives it back.
    expect(bob_page.locator("#message-input")).to_be_enabled()
    dialog.locator("#archive-button").click()
    expect(bob_page.locator("#message-input")).to_be_disabled()
    expect(alice_page.locator("#message-input")).to_be_disabled()
    expect(dialog.locator("#archive-button")).to_have_text("Unarchive")
    dialog.locator("#archive-button").click()
    expect(bob_page.locator("#message-input")).to_be_enabled()

    # Remove Bob: the room leaves his sidebar.
    dialog.locator(f'#settings-members li[data-user-id="{bob["user"]["id"]}"] button').click()
    expect(room_item(bob_page, room["id"])).to_have_count(0)
    expect(
        dialog.locator(f'#settings-members li[data-user-id="{bob["user"]["id"]}"]')
    ).to_have_count(0)

    # Delete, after a confirmation.
    dialog.locator("#delete-button").click()
    expect(dialog.locator("#confirm-delete")).to_be_focused()
    dialog.locator("#confirm-delete").click()
    expect(dialog).to_be_hidden()
    expect(room_item(alice_page, room["id"])).to_have_count(0)
    answer = httpx.get(
        f"{chat_server.url}/api/rooms/{room['id']}/",
        headers={"Authorization": f"Bearer {alice['access']}"},
        timeout=10,
    )
    assert answer.status_code == 404


def test_mute_hides_the_badge_but_not_mentions_and_leave_drops_the_room(
    chat_server, people, open_page
):
    _alice, alice_rest = people("alice", "Alice")
    bob, bob_rest = people("bob", "Bob")
    room = new_room(alice_rest, "public", bob_rest)
    page = open_page(chat_server, bob["user"]["username"])
    room_item(page, room["id"]).click()
    dialog = open_settings(page)
    dialog.locator("#mute-toggle").check()
    expect(room_item(page, room["id"])).to_have_class(re.compile(r"\bmuted\b"))
    membership = bob_rest("GET", f"/api/rooms/{room['id']}/")
    assert membership["muted"] is True
    page.keyboard.press("Escape")
    # Back in General: Alice's message leaves no badge, her mention does.
    general = next(r for r in bob_rest("GET", "/api/rooms/")["results"] if r["is_general"])
    room_item(page, general["id"]).click()
    alice_rest("POST", f"/api/rooms/{room['id']}/messages/", json={"content": "quiet"})
    page.wait_for_timeout(700)
    expect(badge(page, room["id"])).to_be_hidden()
    alice_rest(
        "POST",
        f"/api/rooms/{room['id']}/messages/",
        json={"content": f"@{bob['user']['username']} look"},
    )
    expect(badge(page, room["id"], "mention")).to_have_text("@1")
    expect(badge(page, room["id"])).to_be_hidden()

    # Leave: the room goes from Bob's list (a public room stays browsable).
    room_item(page, room["id"]).click()
    expect(badge(page, room["id"], "mention")).to_be_hidden()
    dialog = open_settings(page)
    dialog.locator("#leave-button").click()
    expect(dialog).to_be_hidden()
    expect(room_item(page, room["id"])).to_have_count(0)
    expect(page.locator("#room-title")).to_have_text("General")
    assert bob_rest("GET", f"/api/rooms/{room['id']}/")["my_role"] is None


def test_profile_name_picture_and_password_keep_the_page_signed_in(
    chat_server, people, open_page, tmp_path
):
    alice, _ = people("alice", "Alice")
    bob, bob_rest = people("bob", "Bob")
    general = next(r for r in bob_rest("GET", "/api/rooms/")["results"] if r["is_general"])
    bob_rest("POST", f"/api/rooms/{general['id']}/join/")
    page = open_page(chat_server, alice["user"]["username"])
    bob_page = open_page(chat_server, bob["user"]["username"])
    page.locator("#profile-button").click()
    dialog = page.locator("dialog#profile-dialog")
    expect(dialog).to_be_visible()

    dialog.locator("#display-name-input").fill("Alice Pleasance")
    dialog.locator("#display-name-form button[type=submit]").click()
    expect(page.locator("#me-name")).to_have_text("Alice Pleasance")
    send_from = alice["user"]["username"]
    assert rest(chat_server, alice)("GET", "/api/auth/me/")["display_name"] == "Alice Pleasance"

    picture = tmp_path / "me.png"
    picture.write_bytes(PNG)
    dialog.locator("#avatar-input").set_input_files(str(picture))
    expect(page.locator("#me-avatar img.avatar")).to_have_count(1)
    src = page.locator("#me-avatar img.avatar").get_attribute("src")
    assert src and src.startswith("/")
    assert page.request.get(f"{chat_server.url}{src}").status == 200  # with the session
    shot(page, "profile")
    dialog.locator("#avatar-remove").click()
    expect(page.locator("#me-avatar img.avatar")).to_have_count(0)
    expect(page.locator("#me-avatar .avatar.initials")).to_have_text("AP")

    # Password: a wrong current one is refused; the right one changes it and this page
    # stays signed in and connected.
    dialog.locator("#old-password").fill("not-it-at-all-1")
    dialog.locator("#new-password").fill("a-new-secret-phrase-7")
    dialog.locator("#password-form button[type=submit]").click()
    expect(dialog.locator("#password-error")).to_be_visible()
    dialog.locator("#old-password").fill(PASSWORD)
    dialog.locator("#new-password").fill("a-new-secret-phrase-7")
    dialog.locator("#password-form button[type=submit]").click()
    expect(dialog.locator("#password-message")).to_contain_text("Password changed")
    page.keyboard.press("Escape")
    connected(page)
    bob_rest("POST", f"/api/rooms/{general['id']}/messages/", json={"content": "after the change"})
    expect(messages_with(page, "after the change")).to_have_count(1)
    page.reload()
    expect(page).to_have_url(f"{chat_server.url}/")
    connected(page)
    old = httpx.post(
        f"{chat_server.url}/api/auth/login/",
        json={"username": send_from, "password": PASSWORD},
        timeout=10,
    )
    assert old.status_code == 401
    # Bob sees the new name on Alice's messages.
    send(page, "with my new name")
    expect(messages_with(bob_page, "with my new name").locator(".message-sender")).to_have_text(
        "Alice Pleasance"
    )


def test_phone_drawers_close_by_button_escape_and_a_tap_outside(chat_server, people, open_page):
    alice, _ = people("alice", "Alice")
    page = open_page(chat_server, alice["user"]["username"], viewport=PHONE)
    sidebar, members = page.locator("#sidebar"), page.locator("#members")
    expect(sidebar).to_be_hidden()
    expect(members).to_be_hidden()
    for toggle, drawer, close in (
        ("#toggle-sidebar", sidebar, "#close-sidebar"),
        ("#toggle-members", members, "#close-members"),
    ):
        page.locator(toggle).click()
        expect(drawer).to_be_visible()
        expect(page.locator(close)).to_be_focused()
        shot(page, f"phone-{toggle[8:]}")
        page.locator(close).click()
        expect(drawer).to_be_hidden()

        page.locator(toggle).click()
        expect(drawer).to_be_visible()
        page.keyboard.press("Escape")
        expect(drawer).to_be_hidden()
        expect(page.locator(toggle)).to_be_focused()

        page.locator(toggle).click()
        expect(drawer).to_be_visible()
        box = drawer.bounding_box()
        assert box is not None
        # A tap beside the drawer, on the dimmed conversation.
        x = box["x"] - 20 if box["x"] > 40 else box["x"] + box["width"] + 20
        page.mouse.click(x, 400)
        expect(drawer).to_be_hidden()
    # The room drawer also closes by picking a room; the composer stays usable.
    page.locator("#toggle-sidebar").click()
    page.locator("#room-list li").first.click()
    expect(sidebar).to_be_hidden()
    expect(page.locator("#message-input")).to_be_visible()


def test_keyboard_focus_and_shortcuts(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    _, bob_rest = people("bob", "Bob")
    first = new_room(bob_rest, "public", alice_rest)
    page = open_page(chat_server, alice["user"]["username"])
    expect(page.locator("#room-title")).to_have_text("General")
    expect(page.locator("#message-input")).to_be_focused()

    # Ctrl+K: the switcher, filtered by typing, Enter opens; the composer takes the focus.
    page.keyboard.press("Control+k")
    switcher = page.locator("dialog#switcher")
    expect(switcher).to_be_visible()
    page.keyboard.type(first["name"])
    expect(switcher.locator("li")).to_have_count(1)
    shot(page, "switcher")
    page.keyboard.press("Enter")
    expect(switcher).to_be_hidden()
    expect(page.locator("#room-title")).to_have_text(first["name"])
    expect(page.locator("#message-input")).to_be_focused()

    # Alt+Up/Down walk the sidebar's order.
    order = page.locator("#room-list li, #direct-list li").evaluate_all(
        "nodes => nodes.map(n => Number(n.dataset.roomId))"
    )
    at = order.index(first["id"])
    page.keyboard.press("Alt+ArrowDown")
    expect(page.locator("#room-list li.active, #direct-list li.active")).to_have_attribute(
        "data-room-id", str(order[(at + 1) % len(order)])
    )
    page.keyboard.press("Alt+ArrowUp")
    expect(page.locator("#room-list li.active")).to_have_attribute("data-room-id", str(first["id"]))

    # `/` while typing is a character; elsewhere it focuses the search. Escape closes
    # dialogs.
    page.locator("#message-input").fill("")
    page.keyboard.type("a/b")
    expect(page.locator("#message-input")).to_have_value("a/b")
    page.locator("#messages").focus()
    page.keyboard.press("/")
    expect(page.locator("#search-input")).to_be_focused()
    page.locator("#room-settings-button").click()
    expect(page.locator("dialog#room-settings")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog#room-settings")).to_be_hidden()
    page.locator("#profile-button").click()
    expect(page.locator("dialog#profile-dialog")).to_contain_text("Ctrl")
    page.keyboard.press("Escape")
    expect(page.locator("dialog#profile-dialog")).to_be_hidden()


def test_unread_badge_after_a_reconnect_counts_a_missed_message_once(
    chat_server, people, open_page
):
    alice, alice_rest = people("alice", "Alice")
    _, bob_rest = people("bob", "Bob")
    room = new_room(bob_rest, "public", alice_rest)
    page = with_script(open_page(chat_server, alice["user"]["username"]), SOCKET_SWITCH)
    expect(page.locator("#room-title")).to_have_text("General")
    expect(room_item(page, room["id"])).to_have_count(1)

    # The network drops and stays down; a message is posted meanwhile.
    page.evaluate("window.__socketsBlocked = true; window.__sockets.at(-1).close()")
    expect(page.locator("#connection-state")).not_to_have_attribute("data-state", "connected")
    bob_rest("POST", f"/api/rooms/{room['id']}/messages/", json={"content": "while away"})
    page.wait_for_timeout(1500)
    page.evaluate("window.__socketsBlocked = false")
    connected(page, timeout=60_000)
    expect(badge(page, room["id"])).to_have_text("1")
    page.wait_for_timeout(1500)  # the replay and the room list have both landed
    expect(badge(page, room["id"])).to_have_text("1")
    assert alice_rest("GET", f"/api/rooms/{room['id']}/")["unread_count"] == 1
    room_item(page, room["id"]).click()
    expect(messages_with(page, "while away")).to_have_count(1)
    expect(badge(page, room["id"])).to_be_hidden()


def test_reading_on_one_tab_clears_the_badge_on_another(chat_server, people, open_page):
    alice, alice_rest = people("alice", "Alice")
    _, bob_rest = people("bob", "Bob")
    room = new_room(bob_rest, "public", alice_rest)
    first = open_page(chat_server, alice["user"]["username"])
    second = first.context.new_page()
    second.goto(f"{chat_server.url}/")
    connected(second)
    bob_rest("POST", f"/api/rooms/{room['id']}/messages/", json={"content": "for both tabs"})
    expect(badge(first, room["id"])).to_have_text("1")
    expect(badge(second, room["id"])).to_have_text("1")
    first.bring_to_front()
    room_item(first, room["id"]).click()
    expect(badge(first, room["id"])).to_be_hidden()
    expect(badge(second, room["id"])).to_be_hidden()
    expect(second).to_have_title("General · Chat")


def test_big_room_members_panel_lists_who_is_present_and_pages_the_rest(general, open_page):
    """A server that lists at most 2 users present (ROOM_USERS_MAX) in `room_users`: the
    panel shows those, "and N more", and pages the rest from `/members/?online=true`;
    `room_presence` batches keep the count."""
    server = LiveServer(server_environment(ROOM_USERS_MAX="2", PRESENCE_BATCH_MS="100"))
    server.start()
    try:
        accounts = [register(server, unique(f"p{n}-"), f"Person {n}") for n in range(4)]
        alice, others = accounts[0], accounts[1:]
        room = new_room(rest(server, others[0]), "public", *(rest(server, a) for a in accounts))
        # The others are present through sockets of their own (bearer tokens), opened from
        # a second page of the server's origin (its policy allows sockets to itself).
        helper = open_page(server)
        helper.goto(f"{server.url}/login/")
        helper.evaluate(
            """([url, tokens, room]) => { window.__others = tokens.map((token) => {
                const ws = new WebSocket(`${url}/ws/?token=${token}`);
                ws.onopen = () => ws.send(JSON.stringify({ type: "join", room }));
                return ws; }); }""",
            [server.url.replace("http", "ws"), [a["access"] for a in others], room["id"]],
        )
        members = rest(server, alice)
        for _ in range(100):
            present = members("GET", f"/api/rooms/{room['id']}/members/?online=true")
            if len(present["results"]) == 3:
                break
            helper.wait_for_timeout(100)
        page = open_page(server, alice["user"]["username"])
        room_item(page, room["id"]).click()
        expect(page.locator("#room-title")).to_have_text(room["name"])
        expect(page.locator("#member-count")).to_have_text("· 4 online")
        expect(page.locator("#member-list li")).to_have_count(2)
        more = page.locator("#more-members")
        expect(more).to_have_text("and 2 more")
        more.click()
        expect(page.locator("#member-list li")).to_have_count(4)
        expect(more).to_be_hidden()
        # One leaves: a `room_presence` batch takes them off and lowers the count.
        helper.evaluate("window.__others[2].close()")
        expect(page.locator("#member-count")).to_have_text("· 3 online")
        expect(
            page.locator(f'#member-list li[data-user-id="{others[2]["user"]["id"]}"]')
        ).to_have_count(0)
    finally:
        server.stop()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screens_for_a_person_to_look_at(chat_server, people, open_page, scheme):
    """Screenshots of the chrome (SHOTS_DIR); asserts only that the layout holds."""
    alice, alice_rest = people("alice", "Alice")
    _bob, bob_rest = people("bob", "Bob Builder")
    room = new_room(bob_rest, "public", alice_rest)
    direct = bob_rest("POST", "/api/direct/", json={"user_id": alice["user"]["id"]})
    bob_rest("POST", f"/api/rooms/{direct['id']}/messages/", json={"content": "hi there"})
    bob_rest(
        "POST",
        f"/api/rooms/{room['id']}/messages/",
        json={"content": f"@{alice['user']['username']} ping"},
    )
    page = open_page(chat_server, alice["user"]["username"])
    page.emulate_media(color_scheme=scheme)
    expect(badge(page, room["id"], "mention")).to_have_text("@1")
    shot(page, f"desktop-{scheme}")
    open_settings(page)
    shot(page, f"settings-{scheme}")
    page.keyboard.press("Escape")
    page.set_viewport_size(PHONE)
    expect(page.locator("#toggle-sidebar")).to_be_visible()
    shot(page, f"phone-{scheme}")
    page.locator("#toggle-sidebar").click()
    shot(page, f"phone-rooms-{scheme}")
    page.keyboard.press("Escape")
    page.set_viewport_size(DESKTOP)
