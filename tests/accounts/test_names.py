"""One rule for usernames and display names, whatever the way in: the API, the register
page, the admin's forms and `createsuperuser` (accounts/names.py)."""

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from tests.conftest import client_for
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

REGISTER = "/api/auth/register/"
ME = "/api/auth/me/"

BAD_USERNAMES = [
    pytest.param("<b>x</b>", id="markup"),
    pytest.param("\u202eevil", id="right-to-left-override"),
    pytest.param("has space", id="space"),
    pytest.param("a/b", id="slash"),
    pytest.param("ad\u200bmin", id="zero-width-space"),
    pytest.param("\u0430dmin", id="cyrillic-a"),  # mixed scripts: looks like "admin"
    pytest.param("r\u00f6ot", id="non-ascii-letter"),
    pytest.param("x" * 33, id="too-long"),
    pytest.param("", id="empty"),
]

BAD_DISPLAY_NAMES = [
    pytest.param("\u202eevil", id="right-to-left-override"),
    pytest.param("Al\u200bice", id="zero-width-space"),
    pytest.param("Alice\u2066", id="bidi-isolate"),
    pytest.param("bell\x07", id="control"),
    pytest.param("\u3164", id="hangul-filler"),
]


def api_register(username: str, display_name: str = "") -> tuple[int, dict]:
    response = APIClient().post(
        REGISTER,
        {"username": username, "password": PASSWORD, "display_name": display_name},
        format="json",
    )
    return response.status_code, response.json()


def page_register(username: str, display_name: str = "") -> int:
    """The status of the register page's answer: 302 when the account was made."""
    data = {"username": username, "password": PASSWORD, "display_name": display_name}
    return Client().post("/register/", data).status_code


# ----------------------------------------------------------------- usernames


@pytest.mark.parametrize("username", BAD_USERNAMES)
def test_the_api_refuses_unsafe_usernames(username):
    status, body = api_register(username)

    assert status == 400
    assert "username" in body
    assert not User.objects.exists()


@pytest.mark.parametrize("username", BAD_USERNAMES)
def test_the_register_page_refuses_what_the_api_refuses(username):
    status = page_register(username)

    assert status == 200  # the form again
    assert not User.objects.exists()


@pytest.mark.parametrize("username", BAD_USERNAMES)
def test_the_admins_user_creation_form_refuses_what_the_api_refuses(admin_client, username):
    response = admin_client.post(
        "/admin/accounts/user/add/",
        {"username": username, "password1": PASSWORD, "password2": PASSWORD},
    )

    assert response.status_code == 200
    assert "username" in response.context["adminform"].form.errors
    assert not User.objects.filter(is_superuser=False).exists()


def test_createsuperuser_refuses_an_unsafe_username(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    with pytest.raises(CommandError):
        call_command(
            "createsuperuser", username="ad\u200bmin", email="", interactive=False, verbosity=0
        )
    assert not User.objects.exists()


@pytest.mark.parametrize("username", ["alice", "Bob.Smith", "carol_99", "d-e+f@g"])
def test_both_paths_accept_safe_usernames(username):
    assert api_register(username)[0] == 201
    User.objects.all().delete()
    assert page_register(username) == 302
    assert User.objects.get().username == username


def test_a_fullwidth_username_is_stored_normalised_and_taken_in_any_case(user):
    status, body = api_register("\uff43\uff41\uff52\uff4f\uff4c")  # fullwidth "carol"
    assert (status, body["user"]["username"]) == (201, "carol")

    for name in ("\uff21\uff2c\uff29\uff23\uff25", "ALICE"):  # fullwidth "ALICE", "ALICE"
        status, body = api_register(name)
        assert status == 400
        assert body["code"] == "validation_error"
        assert "username" in body
    assert page_register("\uff21\uff2c\uff29\uff23\uff25") == 200
    assert User.objects.filter(username__iexact="alice").count() == 1


# ------------------------------------------------------------- display names


@pytest.mark.parametrize("display_name", BAD_DISPLAY_NAMES)
def test_display_names_refuse_invisible_and_direction_changing_characters(user, display_name):
    status, body = api_register("carol", display_name)
    assert status == 400
    assert "display_name" in body
    assert page_register("carol", display_name) == 200
    assert not User.objects.filter(username="carol").exists()

    response = client_for(user).patch(ME, {"display_name": display_name}, format="json")
    assert response.status_code == 400
    assert "display_name" in response.json()
    user.refresh_from_db()
    assert user.display_name == "Alice"


@pytest.mark.parametrize("display_name", ["bob", "BOB", "\uff42\uff4f\uff42"])  # + fullwidth
def test_a_display_name_cannot_be_another_users_username(user, other_user, display_name):
    status, body = api_register("carol", display_name)
    assert status == 400
    assert "display_name" in body
    assert page_register("carol", display_name) == 200

    response = client_for(user).patch(ME, {"display_name": display_name}, format="json")
    assert response.status_code == 400
    user.refresh_from_db()
    assert user.display_name == "Alice"


def test_a_display_name_may_be_ones_own_username_and_any_script(user):
    for name in ("alice", "ALICE", "Алиса", "アリス 🎉"):
        response = client_for(user).patch(ME, {"display_name": name}, format="json")
        assert response.status_code == 200, response.json()
    assert api_register("carol", "Carol")[0] == 201


def test_the_admins_change_form_applies_the_display_name_rules(admin_client, user, other_user):
    from tests.accounts.test_admin import change_form_data, change_url

    for bad in ("Al\u202eice", "BOB"):
        data = change_form_data(admin_client.get(change_url(user)))
        data["display_name"] = bad
        response = admin_client.post(change_url(user), data)
        assert response.status_code == 200
        assert "display_name" in response.context["adminform"].form.errors
    user.refresh_from_db()
    assert user.display_name == "Alice"
