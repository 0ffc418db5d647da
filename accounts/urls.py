from django.urls import path

from accounts import views

urlpatterns = [
    path("auth/register/", views.RegisterView.as_view(), name="api-register"),
    path("auth/login/", views.LoginView.as_view(), name="api-login"),
    path("auth/refresh/", views.RefreshView.as_view(), name="api-token-refresh"),
    path("auth/logout/", views.LogoutView.as_view(), name="api-logout"),
    path("auth/me/", views.MeView.as_view(), name="api-me"),
    path("auth/me/avatar/", views.AvatarView.as_view(), name="api-me-avatar"),
    path("auth/password/", views.PasswordView.as_view(), name="api-password"),
    path("avatars/<str:name>", views.AvatarFileView.as_view(), name="avatar-file"),
    path("users/", views.UserListView.as_view(), name="api-users"),
]
