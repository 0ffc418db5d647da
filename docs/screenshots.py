"""Regenerate the screenshots in docs/ from a throwaway database and a real server.

    python docs/screenshots.py

makes, from a team's room over two days (Markdown, a mention, a reply, reactions, an
unread direct message):

- `docs/chat.png` and `docs/chat-dark.png`: the chat page at 1280x800, light and dark;
- `docs/chat-mobile.png`: the same room on a phone, 390x844, a reply being written;
- `docs/room-settings.png`: the room settings dialog, 1280x800;
- `docs/admin-rooms.png`: the admin's room list at 1366 px, a common laptop width.

The admin's many rooms are made by the services in `manage.py shell`; the chat scene is
made through the server's REST API and its pages, except the back-dating of messages,
which no API can do (a `manage.py shell` against the same throwaway database).

Needs Debian's chromium (/usr/bin/chromium) and `pip install playwright`; takes about 35 s.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PORT = 8799
BASE = f"http://127.0.0.1:{PORT}"
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
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct-horse-battery-9"
WAIT_MS = 20_000


# The admin's room list: many people and rooms, made in one go by the services.
SEED = """
import random
from accounts.models import User
from messaging.posting import post_message
from rooms.services import create_room, ensure_general_room, join_room

random.seed(7)
admin = User.objects.create_superuser("admin", "admin@example.com", "admin-password-9")
people = [User.objects.create_user(n, password="correct-horse-9", display_name=n.title())
          for n in ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]]
general, _ = ensure_general_room()
rooms = [general]
for name, kind, about in [
    ("engineering", "public", "Builds and deploys"), ("random", "public", "Anything goes"),
    ("marketing", "public", "Campaigns and launches"), ("support", "public", "Customer questions"),
    ("leadership", "private", "Planning"), ("incident-2041", "private", "Postmortem"),
]:
    owner = random.choice(people)
    rooms.append(create_room(creator=owner, name=name, description=about, kind=kind))
lines = ["Morning all!", "Deploy went out at 9:40.", "Can someone review #512?",
         "Lunch at noon?", "The dashboard is green again.", "Shipping the fix now."]
for room in rooms:
    members = random.sample(people, k=random.randint(3, len(people)))
    for person in members:
        if room.kind == "public":
            join_room(room=room, user=person)
    for _ in range(random.randint(3, 25)):
        if room.kind == "public":
            post_message(room=room, author=random.choice(members), content=random.choice(lines))
"""

# The chat scene: who is in it (the first one looks at the page).
PEOPLE = [
    ("ana", "Ana Lima"),
    ("ben", "Ben Okafor"),
    ("chen", "Chen Wei"),
    ("dana", "Dana Brooks"),
]
TOPIC = "Pixels, type and the new chat page. Reviews on Tuesdays and Thursdays."
CONTRAST = """Badge contrast: 5.2:1 in light, 7.9:1 in dark.
```css
.badge       { background: #2563eb; }
.dark .badge { background: #60a5fa; }
```"""
LINKS = (
    "Pushed the **new sidebar** to the `redesign` branch, "
    "screens are on the [review board](https://example.com/design/review)."
)
CHANGES = "- unread and mention badges\n- day separators\n- SVG icons instead of emoji"
MENTION = "@ana could you sign off the mobile layout before Thursday's review?"
DRAWER = "The drawer now slides over the messages instead of pushing them."
SLASH = "Yes: `/` focuses search and `Ctrl+K` opens the room switcher."
DRAFT = "Signed off, ship it! 🚀"
# (who, content, the index of the message it replies to, {emoji: [who reacted]}, day,
# minute): day 0 is yesterday, `minute` minutes after 14:00; day 1 is today, `minute`
# minutes ago. Messages of one sender within five minutes are grouped by the page.
Line = tuple[str, str, int | None, dict[str, list[str]], int, int]
SCRIPT: list[Line] = [
    ("dana", "Is the review still on for Thursday?", None, {}, 0, 5),
    ("ana", "Yes, 2 pm. Bring the mobile screens.", None, {}, 0, 9),
    ("chen", "The badge contrast is low in dark mode, I'll measure it tomorrow.", None, {}, 0, 80),
    ("dana", "Can we keep the slash key for search? People use it a lot.", None, {}, 0, 101),
    ("ana", SLASH, 3, {}, 0, 104),
    ("ben", LINKS, None, {}, 1, 58),
    ("ben", CHANGES, None, {"❤️": ["chen", "dana"], "👍": ["ana"]}, 1, 57),
    ("chen", CONTRAST, None, {}, 1, 40),
    ("chen", "Both pass **AA**.", None, {"🙌": ["ben", "dana"]}, 1, 39),
    ("ben", MENTION, None, {}, 1, 22),
    ("ben", DRAWER, None, {"🚀": ["chen"]}, 1, 21),
    ("dana", "Tried it on my phone: much faster 🎉", 10, {}, 1, 12),
    ("ana", "On it after lunch. **Great work**, everyone!", None, {"🎉": ["ben", "dana"]}, 1, 3),
]


def wait_for_server() -> None:
    for _ in range(200):
        try:
            if httpx.get(f"{BASE}/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


class Api:
    """The server's REST API as one user."""

    def __init__(self, username: str, display_name: str) -> None:
        body = {"username": username, "password": PASSWORD, "display_name": display_name}
        answer = httpx.post(f"{BASE}/api/auth/register/", json=body, timeout=10)
        answer.raise_for_status()
        account = answer.json()
        self.id: int = account["user"]["id"]
        self.username = username
        self.headers = {"Authorization": f"Bearer {account['access']}"}

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = httpx.request(method, f"{BASE}{path}", headers=self.headers, timeout=10, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None


def backdate(env: dict[str, str], room: int, times: dict[int, tuple[int, int]]) -> None:
    """Give messages `{id: (day, minute)}` their time: day 0 is yesterday at 14:00 plus
    `minute`, day 1 is `minute` minutes ago (after today's midnight, whenever this runs).
    The room's notices before them (joins, roles) go to yesterday at 13:50."""
    first = min(times)
    code = f"""
from datetime import timedelta
from django.utils import timezone
from messaging.models import Message
now = timezone.now()
midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
for pk, (day, minute) in {json.dumps(times)}.items():
    if day == 0:
        at = midnight - timedelta(hours=10) + timedelta(minutes=minute)
    elif now - midnight >= timedelta(hours=1):
        at = now - timedelta(minutes=minute)
    else:  # just after midnight: the same order, squeezed into the time since
        at = midnight + (now - midnight) * (60 - minute) / 60
    Message.objects.filter(pk=int(pk)).update(created_at=at)
first = Message.objects.get(pk={first})
Message.objects.filter(room_id={room}, seq__lt=first.seq).update(
    created_at=midnight - timedelta(hours=10, minutes=10))
"""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True
    )


def make_scene(env: dict[str, str]) -> dict[str, Any]:
    """The people, rooms and messages of the chat screenshots, through the REST API."""
    users = {username: Api(username, name) for username, name in PEOPLE}
    ana, ben, chen, dana = (users[u] for u, _ in PEOPLE)
    listing = ana("GET", "/api/rooms/")
    rooms = {r["name"]: r for r in (listing["results"] if isinstance(listing, dict) else listing)}
    general = next(r for r in rooms.values() if r.get("is_general"))
    for who in users.values():
        who("POST", f"/api/rooms/{general['id']}/join/")
    ana("POST", f"/api/rooms/{rooms['engineering']['id']}/join/")

    design = ana("POST", "/api/rooms/", json={"name": "design", "description": TOPIC})
    for who in (ben, chen, dana):
        who("POST", f"/api/rooms/{design['id']}/join/")
    ana("POST", f"/api/rooms/{design['id']}/members/", json={"user_id": ben.id, "role": "admin"})

    posted: list[dict[str, Any]] = []
    times: dict[int, tuple[int, int]] = {}
    for author, content, reply, reactions, day, minute in SCRIPT:
        body: dict[str, Any] = {"content": content}
        if reply is not None:
            body["reply_to"] = posted[reply]["id"]
        message = users[author]("POST", f"/api/rooms/{design['id']}/messages/", json=body)
        posted.append(message)
        times[message["id"]] = (day, minute)
        for emoji, reactors in reactions.items():
            for reactor in reactors:
                users[reactor](
                    "POST", f"/api/messages/{message['id']}/reactions/", json={"emoji": emoji}
                )
    backdate(env, design["id"], times)

    # Direct rooms: one read, one with two messages Ana has not seen.
    with_chen = ana("POST", "/api/direct/", json={"user_id": chen.id})
    ana(
        "POST",
        f"/api/rooms/{with_chen['id']}/messages/",
        json={"content": "Thanks for the contrast check!"},
    )
    seen = chen("POST", f"/api/rooms/{with_chen['id']}/messages/", json={"content": "Anytime 🙂"})
    ana("POST", f"/api/rooms/{with_chen['id']}/read/", json={"message_id": seen["id"]})
    with_ben = ben("POST", "/api/direct/", json={"user_id": ana.id})
    ben(
        "POST",
        f"/api/rooms/{with_ben['id']}/messages/",
        json={"content": "Are you joining the 3 pm sync?"},
    )
    ben(
        "POST",
        f"/api/rooms/{with_ben['id']}/messages/",
        json={"content": "I'll bring the prototype."},
    )
    # A busy room Ana has not caught up with.
    for who, text in [(chen, "Staging is on the new build."), (dana, "Thanks, checking now.")]:
        who("POST", f"/api/rooms/{rooms['engineering']['id']}/join/")
        who("POST", f"/api/rooms/{rooms['engineering']['id']}/messages/", json={"content": text})
    return {"design": design, "users": users}


def sign_in(page: Any, username: str) -> None:
    page.goto(f"{BASE}/login/")
    form = page.locator("form#login-form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{BASE}/")


# Scrolled to the end, the list's top edge may cut a message by a few pixels: when the
# room below the last message allows, scroll up so that message shows whole.
SNAP = """box => {
    box.scrollTop = box.scrollHeight;
    const view = box.getBoundingClientRect();
    const items = [...box.children].filter((node) => node.offsetHeight > 0);
    const slack = view.bottom - items[items.length - 1].getBoundingClientRect().bottom;
    const cut = items.find((node) => {
        const r = node.getBoundingClientRect();
        return r.top < view.top && r.bottom > view.top;
    });
    const by = cut ? view.top - cut.getBoundingClientRect().top : 0;
    if (by > 0 && by <= slack) box.scrollTop -= by;
}"""


def open_design(page: Any, room_id: int) -> None:
    """Open the room in the page, wait until it is drawn and scrolled to its end."""
    page.locator("#connection-state[data-state=connected]").wait_for(state="attached")
    item = page.locator(f'#room-list li[data-room-id="{room_id}"]')
    if not item.is_visible():  # a phone: the room list is a drawer
        page.locator("#toggle-sidebar").click()
    item.click()
    page.locator("#room-title", has_text="design").wait_for()
    page.locator("#messages .message", has_text="Great work").wait_for()
    page.locator("#member-list li").first.wait_for(state="attached")
    page.wait_for_timeout(600)  # fonts, avatars, the read marker's badge update
    page.locator("#messages").evaluate(SNAP)
    page.wait_for_timeout(200)


def shoot(page: Any, room_id: int, name: str) -> None:
    """A screenshot of the page in a settled state: connected, the open room read (no
    badge of its own). A page that is not fails here rather than make a wrong picture."""
    page.locator("#connection-state[data-state=connected]").wait_for(state="attached")
    page.locator(f'li.active[data-room-id="{room_id}"]:not(.has-unread)').wait_for(state="attached")
    page.screenshot(path=str(DOCS / name))
    print(f"docs/{name}")


def chat_shots(browser: Any, scene: dict[str, Any]) -> None:
    design = scene["design"]["id"]
    # The others are online in browsers of their own, as a team would be.
    others = []
    for username in ("ben", "chen"):
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        sign_in(page, username)
        others.append(context)
    viewer = browser.new_context(viewport=DESKTOP, timezone_id="UTC", locale="en-US")
    page = viewer.new_page()
    sign_in(page, "ana")
    state = viewer.storage_state()
    viewer.close()

    def view(viewport: dict[str, int], scheme: str = "light") -> Any:
        context = browser.new_context(
            viewport=viewport,
            color_scheme=scheme,
            timezone_id="UTC",
            locale="en-US",
            storage_state=state,
            device_scale_factor=1,
            is_mobile=viewport is PHONE,
            has_touch=viewport is PHONE,
        )
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        page.goto(f"{BASE}/")
        open_design(page, design)
        return page

    page = view(DESKTOP)
    shoot(page, design, "chat.png")
    page.locator("#room-settings-button").click()
    page.locator("#room-settings[open] #room-settings-body section").first.wait_for()
    page.wait_for_timeout(400)
    shoot(page, design, "room-settings.png")
    page.context.close()

    page = view(DESKTOP, "dark")
    shoot(page, design, "chat-dark.png")
    page.context.close()

    # Minutes later Ana adds a line (grouped with her last one) and, on her phone, starts a
    # reply to Ben's mention.
    ana = scene["users"]["ana"]
    ana("POST", f"/api/rooms/{design}/messages/", json={"content": "Notes to follow in the wiki."})
    page = view(PHONE)
    page.locator("#messages .message", has_text="could you sign off").focus()
    page.keyboard.press("r")
    page.locator("#reply-banner").wait_for()
    page.locator("#message-input").fill(DRAFT)
    page.mouse.move(200, 20)  # off the messages: no hover toolbar
    page.wait_for_timeout(300)
    page.locator("#messages").evaluate(SNAP)
    page.wait_for_timeout(200)
    shoot(page, design, "chat-mobile.png")
    page.context.close()
    for context in others:
        context.close()


def admin_shot(browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1366, "height": 720})
    page.goto(f"{BASE}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-password-9")
    page.click("input[type=submit]")
    page.goto(f"{BASE}/admin/rooms/room/")
    page.screenshot(path=str(DOCS / "admin-rooms.png"))
    print("docs/admin-rooms.png")
    page.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/shots.sqlite3",
            "MEDIA_ROOT": f"{tmp}/media",
            "LOG_LEVEL": "warning",
            # The scene is made faster than a person types: no budget gets in its way.
            "AUTH_RATE_LIMIT": "1000/min",
            "CHAT_RATE_LIMIT": "1000/10s",
            "WRITE_RATE_LIMIT": "1000/min",
        }
        env.pop("REDIS_URL", None)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([*manage, "shell", "-c", SEED], cwd=ROOT, env=env, check=True)
        server = subprocess.Popen(
            [*manage, "serve", "--host", "127.0.0.1", "--port", str(PORT)], cwd=ROOT, env=env
        )
        try:
            wait_for_server()
            scene = make_scene(env)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                admin_shot(browser)
                chat_shots(browser, scene)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=15)
    print(f"screenshots in {DOCS} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
