from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chatproject import health, metrics, pages
from messaging.protocols import seed_broadcast, seed_rest

api_patterns: list[URLPattern | URLResolver] = [
    # The seeds' REST paths, without the trailing slash (SPEC 9.4).
    path("", include(seed_rest.urlpatterns)),
    path("", include("accounts.urls")),
    path("", include("rooms.urls")),
    path("", include("messaging.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (`?script`),
    # not inline, so the docs live under the same strict Content-Security-Policy.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
]

admin.site.site_header = "Chat server administration"
admin.site.site_title = "Chat server"

urlpatterns = [
    path("", pages.index, name="index"),
    path("favicon.ico", pages.favicon, name="favicon"),
    path("login/", pages.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("register/", pages.register, name="register"),
    path("healthz", health.healthz, name="healthz"),
    path("health", health.healthz, name="health"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # Before the admin's own: its login under AUTH_RATE_LIMIT, like every login form.
    path("admin/login/", pages.admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
    # SPEC 9.2: the seed's broadcast (its path: no /api, no slash) and Slack-style webhooks.
    path("messages", seed_broadcast.BroadcastView.as_view(), name="seed-messages"),
    path("api/hooks/<str:key>/", seed_broadcast.WebhookView.as_view(), name="webhook"),
    path("api/", include(api_patterns)),
    # Last of /api/: JSON 404 (or 308 to the slashed path), never Django's HTML or a 500.
    re_path(r"^api/", seed_rest.api_not_found),
]
