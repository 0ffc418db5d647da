"""Reads of accounts: user lookups and the online state of users."""

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from accounts.models import User, avatar_url
from accounts.presence import online_user_ids
from chatproject.errors import NotFound
from chatproject.events import UserBrief, brief_of

__all__ = [
    "UserNotFound",
    "get_active_user",
    "list_users",
    "online_user_ids",
    "signed_in_still",
    "stream_position_if_signed_in",
    "user_briefs",
]


class UserNotFound(NotFound):
    default_message = "No such user."


def get_active_user(*, user_id: int) -> User:
    try:
        return User.objects.get(pk=user_id, is_active=True)
    except (User.DoesNotExist, ValueError, TypeError):
        raise UserNotFound() from None


def signed_in_still(*, user: User) -> bool:
    """Whether the credentials `user` was authenticated with (its token generation) still
    stand: the account is active and nothing was revoked since it was read."""
    return User.objects.filter(
        pk=user.pk, is_active=True, token_generation=user.token_generation
    ).exists()


def stream_position_if_signed_in(*, user: User) -> int | None:
    """The user's own stream position (SPEC 12) if `signed_in_still`, else None: the one
    query a socket makes once it is subscribed to the user's events."""
    return (
        User.objects.filter(pk=user.pk, is_active=True, token_generation=user.token_generation)
        .values_list("stream_pos", flat=True)
        .first()
    )


def list_users(*, search: str = "", online: bool | None = None) -> QuerySet[User]:
    users = User.objects.filter(is_active=True)
    if search:
        users = users.filter(Q(username__icontains=search) | Q(display_name__icontains=search))
    if online is not None:
        ids = online_user_ids()
        users = users.filter(pk__in=ids) if online else users.exclude(pk__in=ids)
    return users


def user_briefs(user_ids: Iterable[int]) -> dict[int, UserBrief]:
    """`{id: UserBrief}` for the given users, in one query."""
    rows = User.objects.filter(pk__in=list(user_ids)).values_list(
        "id", "username", "display_name", "is_bot", "is_guest", "avatar"
    )
    return {
        pk: brief_of(
            pk=pk,
            username=name,
            display_name=shown,
            is_bot=bot,
            is_guest=guest,
            avatar=avatar_url(picture),
        )
        for pk, name, shown, bot, guest, picture in rows
    }
