"""The rules for the names users know each other by, written once for every way in (the
API, the register page, the admin's forms, `createsuperuser`).

A username is NFKC-normalised (so "alice" in fullwidth letters is "alice") and then
limited to a safe ASCII set: letters, digits and `@ . + - _`. ASCII only means no
mixed-script confusables ("admin" with a Cyrillic "a", U+0430), no invisible characters
(`ad\\u200bmin`), no bidi overrides, spaces, slashes or markup. Usernames are unique
regardless of case (the model's constraint), so "Admin" cannot stand beside "admin".

A display name is free text, but without the characters that make one name look like
another (controls, bidi overrides, zero-width characters: `chatproject.text.invisible_char`),
and it may not be another user's username (`accounts.services.check_display_name`).
"""

import re
import unicodedata

from django.core.exceptions import ValidationError as DjangoValidationError

from chatproject.errors import ValidationFailed
from chatproject.text import clean_text, invisible_char

USERNAME_MAX_LENGTH = 32
DISPLAY_NAME_MAX_LENGTH = 64
USERNAME_RULE = (
    f"Use 1 to {USERNAME_MAX_LENGTH} characters: English letters, digits and @ . + - _ only."
)
_USERNAME = re.compile(r"[A-Za-z0-9@.+_-]+\Z")


def normalize_name(value: str) -> str:
    """NFKC, as Django normalises usernames (`AbstractBaseUser.normalize_username`)."""
    return unicodedata.normalize("NFKC", value)


def username_refusal(value: str) -> str | None:
    """Why `value` (already normalised) is not a valid username, or None."""
    if not value or len(value) > USERNAME_MAX_LENGTH or not _USERNAME.match(value):
        return USERNAME_RULE
    return None


def validate_username(value: str) -> None:
    """The model field's validator (admin forms, `createsuperuser`, `full_clean`)."""
    refusal = username_refusal(value)
    if refusal is not None:
        raise DjangoValidationError(refusal, code="invalid")


def clean_username(value: str) -> str:
    """The normalised username, or ValidationFailed naming `username`."""
    name = normalize_name(value)
    refusal = username_refusal(name)
    if refusal is not None:
        raise ValidationFailed(refusal, fields={"username": [refusal]})
    return name


def clean_display_name(value: str) -> str:
    """`value` without surrounding spaces, or ValidationFailed / TooLong naming
    `display_name`. (Whether it is another user's username needs the database:
    `accounts.services.check_display_name`.)"""
    name = value.strip()
    char = invisible_char(name)
    if char is not None:
        message = (
            "A display name cannot contain control, invisible or direction-changing "
            f"characters (U+{ord(char):04X})."
        )
        raise ValidationFailed(message, fields={"display_name": [message]})
    return clean_text(name, field="display_name", max_length=DISPLAY_NAME_MAX_LENGTH)


def validate_display_name(value: str) -> None:
    """The model field's validator (the admin's forms)."""
    try:
        clean_display_name(value)
    except ValidationFailed as exc:
        raise DjangoValidationError(exc.message, code="invalid") from None
