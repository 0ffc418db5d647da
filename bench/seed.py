"""Data for the load tool, written with Django straight into the bench database.

Run as a subprocess with the server's DATABASE_URL, SECRET_KEY and JWT_SECRET:

    python bench/seed.py setup SPEC.json OUT.json   # users, rooms, memberships, tokens
    python bench/seed.py verify ROOM_ID OUT.json    # is the room's stream gap-free?

SPEC is `{"users": N, "token_hours": H, "rooms": {"key": [member index, ...]}}`. Users
are `bench-00000` … (kept between runs, unusable passwords); rooms are made afresh by
`rooms.services.create_room`, with memberships as bulk-created rows (joining through the
service would post one system message per member). Every earlier bench room is deleted.
"""

import json
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROOM_PREFIX = "bench "


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()


def ensure_users(count: int) -> list[int]:
    """Ids of users bench-00000 … bench-{count-1}, creating the missing ones."""
    from accounts.models import User

    names = [f"bench-{i:05d}" for i in range(count)]
    existing = dict(
        User.objects.filter(username__startswith="bench-").values_list("username", "pk")
    )
    missing = []
    for name in names:
        if name not in existing:
            user = User(username=name)
            user.set_unusable_password()
            missing.append(user)
    User.objects.bulk_create(missing, batch_size=2000)
    if missing:
        existing = dict(
            User.objects.filter(username__startswith="bench-").values_list("username", "pk")
        )
    return [existing[name] for name in names]


def make_rooms(rooms: dict[str, list[int]], user_ids: list[int]) -> dict[str, int]:
    """One fresh public room per key, with the given users (by index) as members."""
    from rooms.models import Membership, Room
    from rooms.services import create_room

    Room.objects.filter(name__startswith=ROOM_PREFIX).delete()
    run = uuid.uuid4().hex[:6]
    made: dict[str, int] = {}
    memberships = []
    for key, members in rooms.items():
        room = create_room(creator=None, name=f"{ROOM_PREFIX}{run} {key}")
        made[key] = room.pk
        memberships.extend(Membership(room=room, user_id=user_ids[i]) for i in members)
    Membership.objects.bulk_create(memberships, batch_size=5000)
    return made


def mint_tokens(user_ids: list[int], hours: float) -> list[str]:
    """Access tokens that outlive the run (a server closes a socket whose token expires)."""
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User

    users = User.objects.in_bulk(user_ids)
    tokens = []
    for pk in user_ids:
        token = AccessToken.for_user(users[pk])
        token.set_exp(lifetime=timedelta(hours=hours))
        tokens.append(str(token))
    return tokens


def setup(spec: dict[str, Any]) -> dict[str, Any]:
    user_ids = ensure_users(spec["users"])
    rooms = make_rooms(spec["rooms"], user_ids)
    tokens = mint_tokens(user_ids, spec["token_hours"])
    return {"user_ids": user_ids, "tokens": tokens, "rooms": rooms}


def verify(room_id: int) -> dict[str, Any]:
    """Whether the room's messages hold positions 1..room.pos, each exactly once."""
    from messaging.models import Message
    from rooms.models import Room

    pos = Room.objects.values_list("pos", flat=True).get(pk=room_id)
    seqs = sorted(Message.objects.filter(room_id=room_id).values_list("seq", flat=True))
    unique = set(seqs)
    return {
        "messages": len(seqs),
        "room_pos": pos,
        "duplicates": len(seqs) - len(unique),
        "missing": len(set(range(1, pos + 1)) - unique),
        "gap_free": seqs == list(range(1, pos + 1)),
    }


def main() -> None:
    command, arg, out = sys.argv[1:4]
    _django()
    if command == "setup":
        result = setup(json.loads(Path(arg).read_text()))
    elif command == "verify":
        result = verify(int(arg))
    else:
        raise SystemExit(f"unknown command {command!r}")
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
