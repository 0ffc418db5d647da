"""Guests (SPEC 9.3): names that never pass for a registered user, per-address budgets,
public rooms only, removal after GUEST_TTL with their messages kept."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import guests
from accounts.guests import guest_for, sweep_guests, touch_guest
from accounts.models import User
from accounts.presence import presence, user_key
from accounts.services import register_user
from chatproject.errors import Forbidden, RateLimited, Unauthenticated, ValidationFailed
from chatproject.periodic import PeriodicJob
from messaging.posting import post_message_from_input
from rooms.selectors import RoomNotFound, get_visible_room, visible_rooms
from tests.factories import PASSWORD, UserFactory, add_member, make_room

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.7"


@pytest.fixture
def guests_on(settings):
    settings.CHAT_ALLOW_GUESTS = True
    return settings


def online(user: User) -> None:
    presence().enter(user_key(user.pk), f"socket-of-{user.pk}")


def test_guests_are_refused_when_off(settings):
    settings.CHAT_ALLOW_GUESTS = False

    with pytest.raises(Unauthenticated, match="Guests are not allowed"):
        guest_for(name="nick", address=ADDRESS)

    assert not User.objects.filter(is_guest=True).exists()


def test_a_guest_is_marked_holds_a_reserved_username_and_cannot_sign_in(guests_on):
    guest = guest_for(name="Nick", address=ADDRESS)

    assert guest.is_guest and guest.is_active
    assert guest.username == "guest:nick"  # a colon: no registration can ever take it
    assert guest.display_name == "Nick"
    assert not guest.has_usable_password()
    assert guest.last_seen is not None


@pytest.mark.parametrize("name", ["ALICE", "Alice", "\uff41\uff4c\uff49\uff43\uff45"])  # fullwidth
def test_a_guest_name_equal_to_a_registered_username_in_any_case_is_refused(guests_on, user, name):
    with pytest.raises(ValidationFailed, match="taken"):
        guest_for(name=name, address=ADDRESS)


@pytest.mark.parametrize(
    "name",
    [
        "ali\u200bce",  # zero-width space
        "\u200balice",
        "alice\u202e",  # right-to-left override
        "\u0430lice",  # Cyrillic a: a confusable
        "",
        "a b",
        "x" * 33,
    ],
)
def test_a_guest_name_with_invisible_or_confusable_characters_is_refused(guests_on, user, name):
    with pytest.raises(ValidationFailed) as refused:
        guest_for(name=name, address=ADDRESS)

    assert refused.value.code == "validation_error"
    assert "username" in refused.value.fields
    assert not User.objects.filter(is_guest=True).exists()


def test_an_online_guests_name_is_taken_in_any_case(guests_on):
    first = guest_for(name="Nick", address=ADDRESS)
    online(first)

    with pytest.raises(ValidationFailed, match="taken"):
        guest_for(name="NICK", address=ADDRESS)


def test_an_offline_guests_name_is_reused_with_its_record(guests_on):
    first = guest_for(name="Nick", address=ADDRESS)

    again = guest_for(name="nick", address="198.51.100.1")

    assert again.pk == first.pk
    assert again.display_name == "nick"
    assert User.objects.filter(is_guest=True).count() == 1


def test_registration_refuses_an_active_guests_name_until_the_guest_is_removed(guests_on, settings):
    guest = guest_for(name="Nick", address=ADDRESS)

    with pytest.raises(ValidationFailed, match="already exists"):
        register_user(username="nick", password=PASSWORD)

    User.objects.filter(pk=guest.pk).update(last_seen=timezone.now() - timedelta(days=2))
    assert sweep_guests() == 1
    assert register_user(username="nick", password=PASSWORD).is_guest is False
    # And now the name is a registered one: no guest may take it.
    with pytest.raises(ValidationFailed, match="taken"):
        guest_for(name="Nick", address=ADDRESS)


def test_asking_for_guests_is_limited_per_client_address(guests_on):
    guests_on.AUTH_RATE_LIMIT = (2, 60)
    guest_for(name="one", address=ADDRESS)
    guest_for(name="two", address=ADDRESS)

    with pytest.raises(RateLimited):
        guest_for(name="three", address=ADDRESS)
    # Another address has its own budget.
    assert guest_for(name="three", address="198.51.100.1").is_guest


def test_guest_posts_are_limited_per_client_address_as_well(guests_on):
    guests_on.CHAT_RATE_LIMIT = (2, 60)
    guests.check_guest_post(address=ADDRESS)
    guests.check_guest_post(address=ADDRESS)

    with pytest.raises(RateLimited):
        guests.check_guest_post(address=ADDRESS)


def test_a_guest_cannot_see_or_post_in_a_private_room_even_when_invited(guests_on, user):
    guest = guest_for(name="Nick", address=ADDRESS)
    private = make_room(owner=user, kind="private")
    add_member(private, guest)

    with pytest.raises(RoomNotFound):
        get_visible_room(room_id=private.pk, user=guest)
    assert private not in visible_rooms(user=guest)
    with pytest.raises(Forbidden, match="public rooms only"):
        post_message_from_input(room=private, author=guest, data={"content": "hi"})
    assert not private.messages.filter(sender=guest).exists()


def test_a_guest_posts_in_a_public_room(guests_on, general):
    guest = guest_for(name="Nick", address=ADDRESS)
    add_member(general, guest)

    message, created = post_message_from_input(room=general, author=guest, data={"content": "hi"})

    assert created and message.sender == guest


def test_idle_guests_are_removed_and_their_messages_stay_under_their_name(guests_on, general):
    idle = guest_for(name="Idle", address=ADDRESS)
    add_member(general, idle)
    message, _ = post_message_from_input(room=general, author=idle, data={"content": "bye"})
    busy = guest_for(name="Busy", address=ADDRESS)
    connected = guest_for(name="Connected", address=ADDRESS)
    online(connected)
    registered = UserFactory(last_seen=timezone.now() - timedelta(days=30))
    long_ago = timezone.now() - timedelta(seconds=guests_on.GUEST_TTL + 60)
    User.objects.filter(pk__in=[idle.pk, connected.pk]).update(last_seen=long_ago)

    assert sweep_guests() == 1

    idle.refresh_from_db()
    assert not idle.is_active
    for kept in (busy, connected, registered):
        kept.refresh_from_db()
        assert kept.is_active
    message.refresh_from_db()
    assert message.sender_id == idle.pk
    assert message.sender.shown_name == "Idle"


def test_touching_a_guest_records_activity(guests_on):
    guest = guest_for(name="Nick", address=ADDRESS)
    long_ago = timezone.now() - timedelta(hours=5)
    User.objects.filter(pk=guest.pk).update(last_seen=long_ago)

    touch_guest(guest)

    guest.refresh_from_db()
    assert guest.last_seen > long_ago
    assert sweep_guests() == 0


def test_the_sweep_runs_often_enough_for_short_and_long_ttls(settings):
    settings.GUEST_TTL = 2
    assert guests.sweep_every() == 1.0
    settings.GUEST_TTL = 24 * 3600
    assert guests.sweep_every() == 3600.0


def test_the_user_list_marks_guests(guests_on, alice_api):
    guest_for(name="Nick", address=ADDRESS)

    rows = alice_api.get("/api/users/").json()["results"]

    assert {row["display_name"]: row["is_guest"] for row in rows} == {
        "Alice": False,
        "Nick": True,
    }


def test_the_server_start_starts_the_guest_sweep_in_its_process(monkeypatch):
    from chatproject.signals import server_starting

    swept = threading.Event()
    sweeper = PeriodicJob("guest-sweeper", guests.sweep_guests, guests.sweep_every)
    monkeypatch.setattr(sweeper, "run_forever", swept.set)
    monkeypatch.setattr(guests, "sweeper", sweeper)
    [receiver] = [
        entry[1] for entry in server_starting.receivers if entry[0][0] == "sweep-idle-guests"
    ]

    receiver(signal=server_starting, sender=None)

    assert swept.wait(5)
    assert guests.sweeper.start() is False  # once per process
