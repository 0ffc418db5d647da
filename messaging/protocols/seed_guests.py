"""Guests of the seed adapters (`simple`'s `/ws` and `socketio`), in Channels' thread pool:
`accounts.guests` (CHAT_ALLOW_GUESTS, the name rules, the per-address budget) is the one
place their rules live; this module only runs its functions for an async consumer.
"""

from channels.db import database_sync_to_async

from accounts.guests import check_guest_post, generated_name, guest_for, touch_guest
from accounts.models import User
from chatproject.errors import ValidationFailed

# How many generated guest names to try before giving up (a clash is one in 16 million).
_NAME_ATTEMPTS = 3


@database_sync_to_async
def guest_named(name: object, address: str) -> User:
    """The guest of this nickname (the seed's `username`), for a client at `address`."""
    if not isinstance(name, str):
        raise ValidationFailed("`username` must be a string.", fields={"username": ["Required."]})
    return guest_for(name=name, address=address)


@database_sync_to_async
def generated_guest(address: str) -> User:
    """A guest of a generated name (seeds 000/001 ask for no name)."""
    for _ in range(_NAME_ATTEMPTS - 1):
        try:
            return guest_for(name=generated_name(), address=address)
        except ValidationFailed:  # the name was taken: another
            pass
    return guest_for(name=generated_name(), address=address)


@database_sync_to_async
def guest_posts(user: User, address: str) -> None:
    """A guest's post also spends its address's budget, and keeps the guest alive."""
    check_guest_post(address=address)
    touch_guest(user)
