"""Guests (SPEC 9.3): a nickname identity for the clients of the anonymous seed servers.

With `CHAT_ALLOW_GUESTS` on, a socket may ask for a nickname (`/ws?username=Name`, or
`/ws` without credentials, which gets a generated one). `guest_for` answers a `User`
marked `is_guest`, with an unusable password, so nothing but that socket ever signs in as
it. The choices, and why:

- **Names.** A nickname follows the username rule (`accounts.names`: NFKC, then ASCII
  letters, digits and `@ . + - _`), so invisible, direction-changing and mixed-script
  confusable characters are refused, and it may not equal any registered username in any
  case. The guest's own username is `guest:<nickname in lower case>`: a colon is outside
  the username rule, so no registration can ever take it or pass for it, and the unique
  constraint on `lower(username)` makes one record per nickname, whoever races for it.
  The nickname, in the case it was given, is the `display_name` every message shows.
- **Registration** refuses a username that an active guest holds as nickname
  (`accounts.services.register_user`), so a guest's name never equals a registered one.
  Once the guest is removed, the name is free to register.
- **Reuse.** A nickname whose guest is not online (no open socket on any process) is
  handed to whoever asks next, with that guest's record (the anonymous servers had no
  more than that); while the guest is online, the nickname is taken.
- **Removal.** A guest without activity (`touch_guest`; the last socket's close sets
  `last_seen` too) for `GUEST_TTL` seconds is deactivated by `sweep_guests`, which every
  server process runs on its own. The record stays, so their messages keep their sender
  and their nickname (`Message.sender` is SET_NULL: deleting the user would leave them
  nameless); its memberships stay too (an inactive user is nobody's online member).
- **Limits.** Public rooms only (`rooms.selectors`). Asking for a guest spends the
  client address's budget (`guest:<address>`, `AUTH_RATE_LIMIT`: a nickname is a
  sign-in); a guest's post spends the address's `CHAT_RATE_LIMIT` (`check_guest_post`)
  besides the guest's own, so new nicknames do not buy new budgets.
"""

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.names import normalize_name, username_refusal
from accounts.presence import online_user_ids
from chatproject import throttle
from chatproject.errors import Unauthenticated, ValidationFailed
from chatproject.logs import get_logger
from chatproject.periodic import PeriodicJob
from chatproject.text import invisible_char

log = get_logger(__name__)

GUEST_PREFIX = "guest:"
GUESTS_OFF = "Guests are not allowed on this server; sign in with an account."
NAME_TAKEN = "That name is taken; pick another."
# A guest's `last_seen` is written at most once per this many seconds while they post.
TOUCH_EVERY = 60


def guests_allowed() -> bool:
    return bool(settings.CHAT_ALLOW_GUESTS)


def guest_username(nickname: str) -> str:
    """The username of the guest holding `nickname` (never a valid registered username)."""
    return GUEST_PREFIX + nickname.lower()


def clean_nickname(value: object) -> str:
    """The nickname as a guest will hold it, or ValidationFailed naming `username`."""
    if not isinstance(value, str):
        raise _invalid("A guest name must be a string.")
    name = normalize_name(value.strip())
    char = invisible_char(name)
    if char is not None:
        raise _invalid(
            "A guest name cannot contain control, invisible or direction-changing "
            f"characters (U+{ord(char):04X})."
        )
    refusal = username_refusal(name)
    if refusal is not None:
        raise _invalid(refusal)
    return name


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, fields={"username": [message]})


def guest_held(name: str) -> bool:
    """Whether an active guest holds this nickname (registration refuses it then)."""
    return User.objects.with_username(guest_username(name)).filter(is_active=True).exists()


def guest_for(*, name: str, address: str) -> User:
    """The guest holding nickname `name`, made for it or reused (see the module's text).

    Raises Unauthenticated when guests are off, RateLimited beyond the address's budget,
    ValidationFailed for a bad name or one that is taken (a registered user's, in any
    case, or an online guest's)."""
    if not guests_allowed():
        raise Unauthenticated(GUESTS_OFF)
    throttle.spend(
        f"guest:{address}",
        rate=settings.AUTH_RATE_LIMIT,
        budget="guest",
        refusal="Too many guest names from your address; try again in {retry_after} s.",
    )
    nickname = clean_nickname(name)
    if User.objects.with_username(nickname).exists():
        raise _invalid(NAME_TAKEN)
    now = timezone.now()
    try:
        with transaction.atomic():
            guest = User.objects.with_username(guest_username(nickname)).select_for_update().first()
            if guest is None:
                guest = User(
                    username=guest_username(nickname),
                    display_name=nickname,
                    is_guest=True,
                    last_seen=now,
                )
                guest.set_unusable_password()
                guest.save()
                return guest
            if not guest.is_guest or guest.pk in online_user_ids([guest.pk]):
                raise _invalid(NAME_TAKEN)
            guest.is_active, guest.display_name, guest.last_seen = True, nickname, now
            guest.save(update_fields=["is_active", "display_name", "last_seen"])
            return guest
    except IntegrityError:  # another request made this guest first: it is online now
        raise _invalid(NAME_TAKEN) from None


def generated_name() -> str:
    """A nickname for a client that gave none (`/ws` without credentials)."""
    return f"guest-{secrets.token_hex(3)}"


def touch_guest(user: User) -> None:
    """Record a guest's activity (their post), which keeps them from removal."""
    if not user.is_guest:
        return
    now = timezone.now()
    recent = now - timedelta(seconds=TOUCH_EVERY)
    User.objects.filter(pk=user.pk).filter(Q(last_seen__lt=recent) | Q(last_seen=None)).update(
        last_seen=now
    )


def check_guest_post(*, address: str) -> None:
    """A guest's post also spends its client address's CHAT_RATE_LIMIT."""
    throttle.spend(
        f"guest-send:{address}",
        rate=settings.CHAT_RATE_LIMIT,
        budget="chat",
        refusal="At most {count} guest messages per {window} s from your address; "
        "try again in {retry_after} s.",
    )


def sweep_guests(*, now: datetime | None = None) -> int:
    """Deactivate the guests idle for GUEST_TTL seconds and not online; how many."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.GUEST_TTL)
    idle = User.objects.filter(is_guest=True, is_active=True).filter(
        Q(last_seen__lt=cutoff) | Q(last_seen=None, date_joined__lt=cutoff)
    )
    ids = set(idle.values_list("pk", flat=True))
    ids -= online_user_ids(ids)
    if not ids:
        return 0
    return User.objects.filter(pk__in=ids, is_guest=True).update(is_active=False)


def sweep_every() -> float:
    """Seconds between sweeps: a quarter of GUEST_TTL, at most an hour, at least a second."""
    return max(1.0, min(settings.GUEST_TTL / 4, 3600.0))


# Started by every server process (accounts.apps, on `server_starting`).
sweeper = PeriodicJob("guest-sweeper", sweep_guests, sweep_every)
