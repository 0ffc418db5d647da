"""The signed-in user of a request, typed as `accounts.models.User`.

Views run after their authentication check (DRF's default `IsAuthenticated`, the admin
site's staff check), so `request.user` is then a `User`; its declared type
(`User | AnonymousUser`) cannot say so. `signed_in(request)` narrows it, and refuses a
request without a signed-in user as that check would have (401).
"""

from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from accounts.models import User


def signed_in(request: Request | HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user
