"""Configuration from the environment, checked in a fresh interpreter each time."""

import os
import subprocess
import sys

import pytest

from chatproject.settings import PUBLISHED_SECRET_KEY as PUBLISHED
from tests.live import ROOT

PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], "
    "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'debug': s.DEBUG, "
    "'origins': s.ALLOWED_ORIGINS, 'rate': s.CHAT_RATE_LIMIT, 'hosts': s.ALLOWED_HOSTS}))"
)
CLEARED = (
    "ENV",
    "HSTS_SECONDS",
    "SECRET_KEY",
    "JWT_SECRET",
    "HOST",
    "DEBUG",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_HOST",
    "ALLOWED_ORIGINS",
)

STRONG = "kq3-Vd9xR2mZ7pL0wT5yB8nC4hJ6fG1sA_eU"  # 36 characters, many kinds


def run_settings(*, probe: str = PROBE, **env: str) -> subprocess.CompletedProcess:
    """Settings as a fresh interpreter reads them from `env` (CLEARED unset first),
    printed by `probe`."""
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    base["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
    return subprocess.run(
        [sys.executable, "-c", probe],
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
        ({"ENV": "production", "SECRET_KEY": STRONG, "DEBUG": "true"}, "DEBUG=true"),
        ({"ENV": "production", "SECRET_KEY": "x" * 50}, "weak SECRET_KEY"),
        ({"ENV": "production", "SECRET_KEY": STRONG, "JWT_SECRET": "a"}, "weak JWT_SECRET"),
        ({"ENV": "production", "SECRET_KEY": STRONG, "JWT_SECRET": "ab" * 20}, "JWT_SECRET"),
        ({"SECRET_KEY": PUBLISHED}, "once published"),
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

    result = run_settings(ENV="production", SECRET_KEY=STRONG)
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


def test_development_listens_on_the_loopback_and_production_everywhere():
    probe = "import django; django.setup(); from django.conf import settings as s; print(s.HOST)"
    hosts = [
        run_settings(probe=probe, **extra).stdout.strip()
        for extra in ({}, {"ENV": "production", "SECRET_KEY": STRONG})
    ]
    assert hosts == ["127.0.0.1", "0.0.0.0"]


def test_development_key_is_made_once_per_checkout_and_kept(tmp_path):
    from chatproject.devsecret import FILE_NAME, development_secret

    first = development_secret(tmp_path)
    assert len(first) >= 50 and first != PUBLISHED
    assert development_secret(tmp_path) == first
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o777 == 0o600
    # Another checkout gets another key.
    other = tmp_path / "other"
    other.mkdir()
    assert development_secret(other) != first
