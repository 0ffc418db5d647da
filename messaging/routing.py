from django.urls import path, re_path

from messaging.consumers import ChatConsumer
from messaging.protocols.simple import SimpleConsumer, UnknownPathConsumer

websocket_urlpatterns = [
    path("ws/", ChatConsumer.as_asgi()),
    path("ws/rooms/<int:room_id>/", ChatConsumer.as_asgi()),
    # The seeds' simple endpoint, without the trailing slash (SPEC 9.4).
    path("ws", SimpleConsumer.as_asgi()),
    # Last: any other path is accepted and closed with 4404, never a 500.
    re_path(r"^.*$", UnknownPathConsumer.as_asgi()),
]
