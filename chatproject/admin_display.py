"""How the admin's lists show moments: short, so a changelist fits 1366 px with the
navigation sidebar open (Django's "Dec. 6, 2026, 1:05 p.m." pushed the last column out
of view)."""

from datetime import datetime

from django.utils.formats import date_format
from django.utils.timezone import localtime

DAY = "M j, Y"  # Dec 6, 2026
MINUTE = "M j, H:i"  # Dec 6, 13:05


def short_moment(moment: datetime | None, fmt: str = MINUTE) -> str:
    return "-" if moment is None else date_format(localtime(moment), fmt)
