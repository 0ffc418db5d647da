"""The operator's management commands: seeding General, figures, the first superuser."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import User
from messaging.models import Message
from messaging.posting import post_message
from rooms.models import Room
from tests.factories import make_room
from tests.live import ROOT

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# ------------------------------------------------------------ seed_general_room


def test_seed_general_room_creates_general_once():
    first = run("seed_general_room")
    second = run("seed_general_room")

    room = Room.objects.get()
    assert (room.name, room.kind, room.description) == ("General", "public", "Everyone's room.")
    assert room.is_general
    assert first.strip() == f"Created room 'General' (id {room.pk})."
    assert second.strip() == f"Found room 'General' (id {room.pk})."


def test_seed_general_room_takes_a_name_and_a_description():
    first = run("seed_general_room", "--name", "Lobby", "--description", "Say hello here.")
    again = run("seed_general_room", "--name", "lobby", "--description", "Something else.")

    room = Room.objects.get()
    assert (room.name, room.description, room.kind) == ("Lobby", "Say hello here.", "public")
    assert first.startswith("Created room 'Lobby'")
    assert again.startswith(f"Found room 'Lobby' (id {room.pk})")


def test_seed_general_room_leaves_an_existing_general_and_its_messages_alone(user, general):
    post_message(room=general, author=user, content="still here")

    output = run("seed_general_room")

    assert output.startswith(f"Found room 'General' (id {general.pk})")
    assert Room.objects.count() == 1
    assert Message.objects.get(room=general).content == "still here"


# ------------------------------------------------------------------- chat_stats


@pytest.fixture
def some_traffic(user, general) -> None:
    other = make_room(owner=user, name="Other")
    post_message(room=general, author=user, content="one")
    post_message(room=other, author=user, content="two")
    post_message(room=other, author=user, content="three")


def test_chat_stats_prints_the_figures(some_traffic):
    output = run("chat_stats")

    figures = dict(
        line.split(None, 1)
        for line in output.splitlines()
        if not line.strip().startswith("process")
    )
    for key in ("connections", "online_users", "rooms", "messages"):
        assert key in figures, output
    assert figures["rooms"] == "2"
    assert figures["messages"] == "3"
    assert int(figures["connections"]) >= 0
    assert int(figures["online_users"]) >= 0


def test_chat_stats_json_is_one_parseable_object(some_traffic):
    figures = json.loads(run("chat_stats", "--json"))

    assert figures["rooms"] == Room.objects.count() == 2
    assert figures["messages"] == 3
    assert isinstance(figures["connections"], int)
    assert isinstance(figures["online_users"], int)
    assert isinstance(figures["processes"], list)


# ------------------------------------------------------------- createsuperuser


def test_createsuperuser_noinput_reads_the_environment(monkeypatch, client):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "boss")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-and-unusual-pass-42")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "boss@example.com")

    output = run("createsuperuser", "--noinput")

    boss = User.objects.get(username="boss")
    assert "Superuser created successfully." in output
    assert (boss.is_staff, boss.is_superuser, boss.is_active) == (True, True, True)
    assert boss.email == "boss@example.com"
    assert boss.check_password("a-long-and-unusual-pass-42")
    assert client.login(username="boss", password="a-long-and-unusual-pass-42")
    assert client.get("/admin/rooms/room/").status_code == 200


def test_createsuperuser_noinput_needs_no_email(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "boss")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-and-unusual-pass-42")
    monkeypatch.delenv("DJANGO_SUPERUSER_EMAIL", raising=False)

    output = run("createsuperuser", "--noinput")

    assert "Superuser created successfully." in output
    assert User.objects.get(username="boss").email == ""


# ------------------------------------------------------------------ sweep_uploads


def test_sweep_uploads_deletes_old_unused_uploads_and_their_files_only(
    user, settings, tmp_path, django_capture_on_commit_callbacks
):
    from datetime import timedelta
    from pathlib import Path

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    from messaging.attachments import store_attachment
    from messaging.models import Attachment

    settings.MEDIA_ROOT = tmp_path

    def upload(name: str, hours_ago: float) -> Attachment:
        stored = store_attachment(
            uploader=user, upload=SimpleUploadedFile(name, b"text\n", content_type="text/plain")
        )
        Attachment.objects.filter(pk=stored.pk).update(
            created_at=timezone.now() - timedelta(hours=hours_ago)
        )
        return stored

    old_unused, fresh_unused, old_used = (
        upload("a.txt", 30),
        upload("b.txt", 1),
        upload("c.txt", 30),
    )
    room = make_room(owner=user, name="Sweep")
    post_message(room=room, author=user, content="", attachments=[old_used])

    with django_capture_on_commit_callbacks(execute=True):
        out = run("sweep_uploads", "--hours", "24")

    assert "Deleted 1 unused upload" in out
    assert set(Attachment.objects.values_list("pk", flat=True)) == {fresh_unused.pk, old_used.pk}
    assert not Path(old_unused.file.path).exists()
    assert Path(fresh_unused.file.path).exists()
    assert Path(old_used.file.path).exists()


def test_manage_py_test_runs_the_pytest_suite():
    """A Django developer's reflex, `manage.py test`, runs the pytest tests it names."""
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "test",
            "tests/test_health.py::test_healthz_and_health_answer_ok",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TEST_DB_NAME": ".test-db-manage-test.sqlite3"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
