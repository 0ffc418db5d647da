"""What follows from changes Django makes itself, whatever path made them.

- A password change revokes every other credential of the user. Every way the project
  offers ends in `User.save()` after `set_password()` (the admin's password forms, the
  `changepassword` command, `accounts.services.change_password`), and so does any other
  (a shell, a future reset page); making the password unusable counts too.
- A sign-out (`/logout/`, the admin's) closes the sockets that session opened.
"""

from typing import Any

from django.contrib.auth.hashers import is_password_usable
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest

from accounts import services
from accounts.models import User
from accounts.sessions import session_digest
from chatproject import events
from chatproject.broadcast import broadcast_user_event


def _password_changed(user: User) -> bool:
    """Whether this save replaces a password someone could sign in with: by a new one
    (`set_password` since the last save) or by none (`set_unusable_password`). Setting
    the first password of a new account revokes nothing, and neither does a hash Django
    upgrades on sign-in."""
    set_now = getattr(user, "_password", None) is not None
    if not set_now and user.has_usable_password():
        return False
    stored = User.objects.filter(pk=user.pk).values_list("password", flat=True).first()
    return bool(stored) and is_password_usable(stored) and stored != user.password


@receiver(pre_save, sender=User)
def _note_password_change(
    sender: type[User], instance: User, raw: bool, update_fields: Any, **kwargs: Any
) -> None:
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and "password" not in update_fields:
        return
    if _password_changed(instance):
        instance._revoke_after_save = True  # type: ignore[attr-defined]


@receiver(post_save, sender=User)
def _revoke_after_password_change(sender: type[User], instance: User, **kwargs: Any) -> None:
    if getattr(instance, "_revoke_after_save", False):
        instance._revoke_after_save = False  # type: ignore[attr-defined]
        services.revoke_credentials(user=instance)


@receiver(user_logged_out)
def _close_the_sessions_sockets(
    sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any
) -> None:
    key = request.session.session_key if request is not None else None
    if isinstance(user, User) and key:
        broadcast_user_event(user.pk, events.session_ended(session_digest(key)))
