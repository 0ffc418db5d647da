"""Regenerate the screenshots in docs/ from a throwaway database and a real server.

    python docs/screenshots.py      # the admin at 1366 px, a common laptop width

Needs Debian's chromium (/usr/bin/chromium) and `pip install playwright`.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
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
    ("design", "public", "Pixels and type"), ("support", "public", "Customer questions"),
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


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/shots.sqlite3",
            "LOG_LEVEL": "warning",
        }
        env.pop("REDIS_URL", None)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([*manage, "shell", "-c", SEED], cwd=ROOT, env=env, check=True)
        server = subprocess.Popen(
            [*manage, "serve", "--host", "127.0.0.1", "--port", str(PORT)], cwd=ROOT, env=env
        )
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"{BASE}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1366, "height": 720})
                page.goto(f"{BASE}/admin/login/")
                page.fill("#id_username", "admin")
                page.fill("#id_password", "admin-password-9")
                page.click("input[type=submit]")
                page.goto(f"{BASE}/admin/rooms/room/")
                page.screenshot(path=str(ROOT / "docs" / "admin-rooms.png"))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=15)


if __name__ == "__main__":
    main()
