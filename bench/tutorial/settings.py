"""Settings of the tutorial-style reference app: Daphne, Channels, an in-process layer."""

SECRET_KEY = "tutorial-reference-app-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["daphne", "channels"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tutorial.urls"
ASGI_APPLICATION = "tutorial.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
# As in the tutorial: the in-memory layer with its defaults (capacity 100 per channel).
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
