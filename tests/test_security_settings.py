"""HSTS and Content-Security-Policy settings, read from the environment in a fresh
interpreter each time (tests/test_settings.py's way)."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.test_settings import STRONG, run_settings

PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'seconds': s.SECURE_HSTS_SECONDS, "
    "'subdomains': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, 'preload': s.SECURE_HSTS_PRELOAD, "
    "'csp': s.CONTENT_SECURITY_POLICY['DIRECTIVES'], 'middleware': s.MIDDLEWARE}))"
)
PRODUCTION = {"ENV": "production", "SECRET_KEY": STRONG}
YEAR = 365 * 24 * 3600


def probe(**env: str) -> dict:
    done = run_settings(probe=PROBE, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (0, False, False)),  # development: never pin a browser to HTTPS on localhost
        (PRODUCTION, (YEAR, False, False)),
        ({**PRODUCTION, "HSTS_SECONDS": "0"}, (0, False, False)),
        ({**PRODUCTION, "HSTS_INCLUDE_SUBDOMAINS": "true"}, (YEAR, True, False)),
        (
            {**PRODUCTION, "HSTS_SECONDS": "63072000", "HSTS_PRELOAD": "true"},
            (63072000, False, True),
        ),
    ],
)
def test_hsts_is_a_year_in_production_and_off_in_development(env, expected):
    config = probe(**env)
    assert (config["seconds"], config["subdomains"], config["preload"]) == expected


def test_policy_admits_no_inline_script_or_style_in_any_mode():
    for config in (probe(), probe(**PRODUCTION)):
        policy = config["csp"]
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"]
        assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == ["'none'"]
        assert not any("unsafe" in source for sources in policy.values() for source in sources)
        assert "chatproject.middleware.ContentSecurityPolicyMiddleware" in config["middleware"]


def test_every_answer_carries_the_policy(client, settings):
    settings.DEBUG = False  # django-csp leaves DEBUG's 404 and 500 pages alone
    for path in ("/login/", "/api/rooms/", "/nowhere/"):
        policy = client.get(path).headers["Content-Security-Policy"]
        assert "script-src 'self';" in f"{policy};", path
        assert "connect-src 'self' ws://testserver wss://testserver" in policy, path


def test_an_attachment_keeps_its_own_sandbox_policy(alice_api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    upload = SimpleUploadedFile("page.html", b"<script>alert(1)</script>", content_type="text/html")
    body = alice_api.post("/api/attachments/", {"file": upload}, format="multipart").json()
    response = alice_api.get(body["url"])
    b"".join(response.streaming_content)  # closes the file
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
