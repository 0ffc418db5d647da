"""ASGI entry point: HTTP to Django, WebSockets to the chat consumer, and `/socket.io/`
(HTTP long-polling and WebSocket) to python-socketio (`messaging.protocols.socketio_app`).
The same application runs under `manage.py serve` and plain `daphne`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from messaging.middleware import SocketAuthMiddleware  # noqa: E402
from messaging.protocols.socketio_app import SocketIOApp  # noqa: E402
from messaging.routing import websocket_urlpatterns  # noqa: E402

channels_app = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SocketAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
socketio_app = SocketIOApp()


async def application(scope, receive, send):
    if socketio_app.serves(scope):
        return await socketio_app(scope, receive, send)
    return await channels_app(scope, receive, send)
