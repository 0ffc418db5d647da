"""Settings, read from the environment (and a `.env` file beside manage.py when present).

Every variable is documented in `.env.example` and in the README's configuration table.
With nothing set the project runs on SQLite and the in-process channel layer.
"""

import ipaddress
import os
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
import redis.exceptions
from django.core.exceptions import ImproperlyConfigured

from chatproject.logs import build_logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _rate(value: str, name: str) -> tuple[int, int]:
    """Parse "20/10s", "10/min", "5/h" into (count, window seconds)."""
    units = {
        "s": 1,
        "sec": 1,
        "m": 60,
        "min": 60,
        "h": 3600,
        "hour": 3600,
        "d": 86400,
        "day": 86400,
    }
    try:
        count, window = value.strip().split("/")
        number = "".join(ch for ch in window if ch.isdigit()) or "1"
        unit = window[len(number) :] if window.startswith(number) else window
        return int(count), int(number) * units[unit.strip().lower()]
    except (ValueError, KeyError):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: write COUNT/WINDOW, e.g. 20/10s or 10/min"
        ) from None


# --------------------------------------------------------------------------- CORE
ENV = env.str("ENV", default="development").strip().lower()
if ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"ENV must be 'development' or 'production', not {ENV!r}")
IS_PRODUCTION = ENV == "production"

# The key published in this file before 2026-12 (and in every copy of it): refused
# everywhere, so a checkout that still has it in a .env cannot sign tokens with it.
PUBLISHED_SECRET_KEY = "django-insecure-dev-only-change-me-0123456789abcdefghijklmnopqrstuvwxyz"
# Weakest SECRET_KEY / JWT_SECRET production accepts (characters; 50 random ones are usual).
MIN_SECRET_LENGTH = 32
DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)


def _check_secret(name: str, value: str) -> str:
    """Production refuses a short, published or single-character-class secret."""
    weak = (
        value == PUBLISHED_SECRET_KEY
        or len(value) < MIN_SECRET_LENGTH
        or len(set(value)) < 10  # "aaaa…", "0123456789" repeated, and the like
        or value.startswith("django-insecure")
    )
    if weak:
        raise ImproperlyConfigured(
            f"ENV=production refuses to start with a weak {name}: set a random value of at "
            f"least {MIN_SECRET_LENGTH} characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    return value


if IS_PRODUCTION:
    SECRET_KEY = _check_secret("SECRET_KEY", env.str("SECRET_KEY", default=""))
    if DEBUG:
        raise ImproperlyConfigured("ENV=production refuses to start with DEBUG=true.")
else:
    # Development: a key made once for this checkout (chatproject.devsecret), never a
    # constant anyone can read in the source: with it, anyone who reaches the port
    # could sign a token for any user.
    from chatproject.devsecret import development_secret

    SECRET_KEY = env.str("SECRET_KEY", default="") or development_secret(BASE_DIR)
    if SECRET_KEY == PUBLISHED_SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY is the key once published in chatproject/settings.py: remove it from "
            "your environment or .env, and a key of this checkout's own is made for you."
        )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
if not IS_PRODUCTION and "*" not in ALLOWED_HOSTS:
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, "*"]

# The same list serves CORS for /api/ and the Origin check of WebSocket handshakes.
# Production allows no other origin unless told (a front end on another origin must be
# named); development allows the usual local front-end server.
ALLOWED_ORIGINS = env.list(
    "ALLOWED_ORIGINS",
    default=env.list("ALLOWED_ORIGIN", default=[] if IS_PRODUCTION else ["http://localhost:3000"]),
)

# Peers whose X-Forwarded-For/-Proto/-Port `serve --proxy-headers` believes (addresses
# or networks): the client is the right-most address not in this list.
TRUSTED_PROXIES = [
    ipaddress.ip_network(network, strict=False)
    for network in env.list("TRUSTED_PROXIES", default=["127.0.0.1/32", "::1/128"])
]

# Who may read GET /metrics in production (development: anyone). Behind a proxy, start
# `serve --proxy-headers` so the address is the client's, not the proxy's.
METRICS_ALLOWED_NETWORKS = [
    ipaddress.ip_network(network)
    for network in env.list(
        "METRICS_ALLOWED_NETWORKS",
        default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
    )
]

# Development listens on the loopback only, as `runserver` does; the containers and
# production listen on every interface.
HOST = env.str("HOST", default="0.0.0.0" if IS_PRODUCTION else "127.0.0.1")
PORT = env.int("PORT", default=8000)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    # Before django.contrib.auth: its `createsuperuser` takes the place of auth's (the
    # first app that has a command wins).
    "accounts",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "chatproject",
    "rooms",
    "messaging",
]

MIDDLEWARE = [
    "chatproject.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "chatproject.middleware.ContentSecurityPolicyMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"
# `manage.py test` runs the pytest suite (chatproject/testrunner.py).
TEST_RUNNER = "chatproject.testrunner.PytestTestRunner"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------- DATABASES
# sqlite:///db.sqlite3 (relative to this checkout) or postgres://user:pass@host:5432/name
DATABASES = {"default": env.db_url("DATABASE_URL", default="sqlite:///db.sqlite3")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if _db["NAME"] not in ("", ":memory:") and not Path(_db["NAME"]).is_absolute():
        _db["NAME"] = str(BASE_DIR / _db["NAME"])
    # IMMEDIATE transactions take the write lock up front, so a read-then-write
    # transaction never fails with "database is locked" halfway; WAL lets readers
    # run beside the one writer. https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # The end-to-end tests run a real server process against the test database,
    # so it must be a file both processes can open; one per test run (its process id), so
    # two runs at once never share it.
    _test_db = env.str("TEST_DB_NAME", default=f".test-db-{os.getpid()}.sqlite3")
    _db["TEST"] = {"NAME": str(BASE_DIR / _test_db)}
elif _db["ENGINE"] in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
    _db["ENGINE"] = "django.db.backends.postgresql"
    if env.str("TEST_DB_NAME", default=""):  # parallel test runs on one server
        _db["TEST"] = {"NAME": env.str("TEST_DB_NAME")}
    # Under ASGI every request may run in a new thread, so Django's persistent
    # connections would leak; psycopg's pool is the documented answer.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#connection-pool
    if env.bool("DATABASE_POOL", default=True):
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": env.int("DATABASE_POOL_SIZE", default=20),
            "timeout": 10,
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ----------------------------------------------------------------------- CHANNELS
REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL and env.str("REDIS_HOST", default=""):
    _password = env.str("REDIS_PASSWORD", default="")
    _auth = f":{_password}@" if _password else ""
    REDIS_URL = f"redis://{_auth}{env.str('REDIS_HOST')}:{env.int('REDIS_PORT', default=6379)}/0"

CHANNEL_LAYERS: dict[str, dict[str, Any]]
if REDIS_URL:
    # Only the fan-out (chatproject.hub) uses the layer: one channel per process, in the
    # groups its sockets need. (RedisPubSubChannelLayer would make a group_send one
    # PUBLISH, but its tasks do not survive an event loop's teardown in the tests: see
    # docs/SCALING.md.)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's default socket_timeout (5 s) equals channels_redis's blocking
                # BZPOPMIN (5 s): an idle receive would time out client-side. Read longer.
                # After a Redis restart, pooled connections are dead: retry a command once
                # on a fresh connection instead of failing it.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 15,
                        "retry_on_error": [redis.exceptions.ConnectionError],
                    }
                ],
                "prefix": env.str("CHANNEL_PREFIX", default="chat"),
                # One channel per process carries all its rooms' events: room for bursts.
                "capacity": 10_000,
                "expiry": 60,
                # Each process refreshes its memberships every 30 s (chatproject.hub), so a
                # dead process's memberships lapse after two minutes, not a day.
                "group_expiry": 120,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1000, "expiry": 60},
        }
    }

# --------------------------------------------------------------------------- REST
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Integration keys (`Bearer chat_…`), before the JWT check, which would refuse
        # them as malformed tokens; other bearer credentials pass on to it.
        "accounts.integrations.ApiKeyAuthentication",
        # simplejwt's, which also refuses revoked tokens (accounts.tokens).
        "accounts.tokens.JWTAuthentication",
        # The web page uses the Django session; DRF enforces CSRF for it.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["chatproject.api.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "chatproject.api.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "chatproject.api.CursorPage",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chatproject.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Chat server API",
    "DESCRIPTION": "REST API of the chat server. The WebSocket protocol is in the README.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from the sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

JWT_SECRET = env.str("JWT_SECRET", default="") or SECRET_KEY
if IS_PRODUCTION:
    _check_secret("JWT_SECRET", JWT_SECRET)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=env.int("JWT_EXPIRY", default=24)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SECRET,
    "AUTH_HEADER_TYPES": ("Bearer",),
}
# Days after a sign-in beyond which no refresh token of it works, however often it was
# rotated (a rotated refresh token keeps the sign-in time: accounts.tokens).
JWT_REFRESH_MAX_DAYS = env.int("JWT_REFRESH_MAX_DAYS", default=30)

CORS_ALLOWED_ORIGINS = ALLOWED_ORIGINS
# The API, and the liveness probes a status page on an allowed origin may poll.
CORS_URLS_REGEX = r"^/(api/.*|healthz|health)$"
CSRF_TRUSTED_ORIGINS = ALLOWED_ORIGINS

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --------------------------------------------------------------------------- CHAT
MAX_MESSAGE_LENGTH = env.int("MAX_MESSAGE_LENGTH", default=1000)
CHAT_RATE_LIMIT = _rate(env.str("CHAT_RATE_LIMIT", default="20/10s"), "CHAT_RATE_LIMIT")
AUTH_RATE_LIMIT = _rate(env.str("AUTH_RATE_LIMIT", default="10/min"), "AUTH_RATE_LIMIT")
MAX_UPLOAD_MB = env.int("MAX_UPLOAD_MB", default=10)
# MiB a user's picture may have as uploaded (it is stored re-encoded, 256 px: accounts.avatars).
AVATAR_MAX_MB = env.int("AVATAR_MAX_MB", default=2)
# Every other write others see (edits, deletes, reactions, joins and leaves, rooms made,
# invitations, role changes), per user, over WebSocket and HTTP.
WRITE_RATE_LIMIT = _rate(env.str("WRITE_RATE_LIMIT", default="60/min"), "WRITE_RATE_LIMIT")
# MiB of uploads not yet used in a message that one user may hold.
UPLOAD_QUOTA_MB = env.int("UPLOAD_QUOTA_MB", default=100)
# Hours after which an upload that no message used is deleted, by a sweep each server
# process runs on its own (messaging.attachments.sweeper) or by `sweep_uploads`.
UNUSED_UPLOAD_HOURS = env.float("UNUSED_UPLOAD_HOURS", default=24.0)
# Request bodies over this many MiB are refused with 413 before they are read.
MAX_REQUEST_MB = env.int("MAX_REQUEST_MB", default=MAX_UPLOAD_MB + 1)
# Seconds a connection may take to send a complete request head (then it is closed), and
# connections one address may hold before their request head is complete.
REQUEST_HEAD_TIMEOUT = env.float("REQUEST_HEAD_TIMEOUT", default=10.0)
MAX_PENDING_CONNECTIONS_PER_ADDRESS = env.int("MAX_PENDING_CONNECTIONS_PER_ADDRESS", default=32)
MAX_SOCKETS_PER_USER = env.int("MAX_SOCKETS_PER_USER", default=20)
SHUTDOWN_TIMEOUT = env.float("SHUTDOWN_TIMEOUT", default=10.0)
# Largest WebSocket frame accepted; Daphne closes larger ones with 1009.
WEBSOCKET_MAX_FRAME_BYTES = 64 * 1024
# Bytes the server holds for one socket whose client does not read; beyond: closed, 4408.
WEBSOCKET_SEND_BUFFER = env.int("WEBSOCKET_SEND_BUFFER", default=1024 * 1024)
# Accept a client's permessage-deflate offer (RFC 7692; browsers make one): frames the
# fan-out sends are compressed once per event for all such sockets (transport/deflate.py).
WEBSOCKET_COMPRESSION = env.bool("WEBSOCKET_COMPRESSION", default=True)
# Seconds an unauthenticated socket may wait for its `authenticate` frame.
WEBSOCKET_AUTH_TIMEOUT = env.float("WEBSOCKET_AUTH_TIMEOUT", default=10.0)
GENERAL_ROOM_NAME = "General"
# Guests (SPEC 9.3): a nickname without an account, in public rooms only, for the clients
# of the anonymous seed servers (`/ws?username=`, `/ws` without credentials). Off unless
# asked for. GUEST_TTL: seconds without activity after which a guest is removed (their
# messages stay, under their nickname; accounts.guests).
CHAT_ALLOW_GUESTS = env.bool("CHAT_ALLOW_GUESTS", default=False)
GUEST_TTL = env.float("GUEST_TTL", default=24 * 3600.0)
# Seconds a socket counts as present without a heartbeat; heartbeats and the sweep of
# dead processes run every third of it, so a dead process's users go offline within
# 4/3 of it (60 s by default).
PRESENCE_TTL = env.float("PRESENCE_TTL", default=45.0)
# A room with more users present than this is "big": `room_users` lists this many of them
# (the lowest ids) with the `count` of all, the rest are paged over
# `GET /api/rooms/{id}/members/?online=true`, and its `user_joined`/`user_left` (and the
# room's share of `user_online`/`user_offline`) give way to `room_presence` batches.
ROOM_USERS_MAX = env.int("ROOM_USERS_MAX", default=100)
# Milliseconds a process gathers a big room's joins and leaves before it sends them as one
# `room_presence` frame, per ROOM_USERS_MAX present (250 ms at 100, 12.5 s at 5,000): at
# most one such frame per room, process and period (messaging.roompresence).
PRESENCE_BATCH_MS = env.int("PRESENCE_BATCH_MS", default=250)

# ------------------------------------------------------------------ STATIC, MEDIA
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Without collectstatic (development), whitenoise serves straight from the finders.
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
if not IS_PRODUCTION:
    # STATIC_ROOT exists only after collectstatic; in development the finders serve.
    # (whitenoise warns with stacklevel=3, so the warning is not attributed to its module.)
    warnings.filterwarnings("ignore", message=r"No directory at: .*staticfiles")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))

# ----------------------------------------------------------------------- SECURITY
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if IS_PRODUCTION:
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # No SECURE_PROXY_SSL_HEADER: Django would believe X-Forwarded-Proto from any client.
    # `serve --proxy-headers` sets the scope's scheme from TRUSTED_PROXIES only, and
    # request.is_secure() follows the scope.

# Strict-Transport-Security on HTTPS answers (Django's SecurityMiddleware; never on plain
# HTTP): a year in production, off in development. Subdomains and the preload list are
# opt-in: both outlive a change of mind (the preload list by months).
SECURE_HSTS_SECONDS = env.int("HSTS_SECONDS", default=365 * 24 * 3600 if IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("HSTS_PRELOAD", default=False)

# Content-Security-Policy on every answer (django-csp, through
# chatproject.middleware.ContentSecurityPolicyMiddleware, which adds this host's ws:/wss:
# to connect-src): scripts, styles and connections from this origin only, no inline
# script or style anywhere (the chat page, the admin, the API docs), images also as
# data: URLs (the admin's and Swagger UI's icons), no plugins, no <base>, no framing.
# An answer that sets its own policy keeps it (attachments: a sandbox).
# https://django-csp.readthedocs.io/en/latest/configuration.html
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ------------------------------------------------------------------------ LOGGING
LOG_LEVEL = env.str("LOG_LEVEL", default="info").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
    raise ImproperlyConfigured("LOG_LEVEL must be one of debug, info, warning, error")
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if IS_PRODUCTION else "console").lower()
if LOG_FORMAT not in {"json", "console"}:
    raise ImproperlyConfigured("LOG_FORMAT must be json or console")

# structlog renders both its own events and the standard library's records.
# https://www.structlog.org/en/stable/standard-library.html
LOGGING = build_logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT)
