"""HTTP: only `/healthz`, so the load tool can tell when the server is up."""

from django.http import HttpRequest, JsonResponse
from django.urls import path


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [path("healthz", healthz)]
