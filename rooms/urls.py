from django.urls import path
from rest_framework.routers import SimpleRouter

from rooms.views import DirectRoomView, RoomViewSet

router = SimpleRouter()
router.register("rooms", RoomViewSet, basename="room")
urlpatterns = [
    *router.urls,
    path("direct/", DirectRoomView.as_view(), name="direct-room"),
]
