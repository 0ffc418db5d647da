"""Configuration from the environment, checked in a fresh interpreter each time."""

import os
import subprocess
import sys

import pytest

from tests.live import ROOT

PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], "
    "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'debug': s.DEBUG, "
    "'origins': s.ALLOWED_ORIGINS, 'rate': s.CHAT_RATE_LIMIT, 'hosts': s.ALLOWED_HOSTS}))"
)
CLEARED = (
    "ENV",
    "SECRET_KEY",
    "DEBUG",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_HOST",
    "ALLOWED_ORIGINS",
)


def run_settings(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    base["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_are_sqlite_and_the_in_process_layer():
    import json

    result = run_settings()
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["engine"] == "django.db.backends.sqlite3"
    assert config["layer"] == "channels.layers.InMemoryChannelLayer"
    assert config["debug"] is True
    assert config["origins"] == ["http://localhost:3000"]
    assert config["rate"] == [20, 10]
    assert "*" in config["hosts"]


def test_database_and_redis_urls_switch_the_backends():
    import json

    result = run_settings(
        DATABASE_URL="postgres://u:p@db.example:5432/chat", REDIS_URL="redis://r.example:6379/0"
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["engine"] == "django.db.backends.postgresql"
    assert config["layer"] == "channels_redis.core.RedisChannelLayer"


def test_allowed_origin_is_an_alias_of_allowed_origins():
    import json

    result = run_settings(ALLOWED_ORIGIN="https://chat.example")
    assert json.loads(result.stdout)["origins"] == ["https://chat.example"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENV": "production"}, "SECRET_KEY"),
        ({"ENV": "production", "SECRET_KEY": "x" * 50, "DEBUG": "true"}, "DEBUG=true"),
        ({"ENV": "staging"}, "ENV must be"),
        ({"CHAT_RATE_LIMIT": "lots"}, "CHAT_RATE_LIMIT"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ],
)
def test_unsafe_or_malformed_configuration_refuses_to_start(env, message):
    result = run_settings(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_production_starts_with_a_real_secret():
    import json

    result = run_settings(ENV="production", SECRET_KEY="s" * 50)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is False


@pytest.mark.parametrize(
    "setting", ["DEFAULT_PAGINATION_CLASS", "DEFAULT_RENDERER_CLASSES", "EXCEPTION_HANDLER"]
)
def test_each_rest_framework_setting_imports_first_in_a_fresh_interpreter(setting):
    # Django runs its system checks in set order, so any of these may be the first thing
    # that imports our REST plumbing; an import cycle there once broke `manage.py serve`.
    probe = (
        "import django; django.setup(); from rest_framework.settings import api_settings; "
        f"value = api_settings.{setting}; "
        "print((value[0] if isinstance(value, list) else value).__module__)"
    )
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "chatproject.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "chatproject.api"
