from django.urls import path

from messaging import views

urlpatterns = [
    path("rooms/<int:room_id>/messages/", views.RoomMessagesView.as_view(), name="room-messages"),
    path("messages/search/", views.SearchView.as_view(), name="message-search"),
    path("messages/<int:message_id>/", views.MessageDetailView.as_view(), name="message-detail"),
    path(
        "messages/<int:message_id>/reactions/",
        views.ReactionsView.as_view(),
        name="message-reactions",
    ),
    path(
        "messages/<int:message_id>/reactions/<str:emoji>/",
        views.ReactionDetailView.as_view(),
        name="message-reaction-detail",
    ),
    path("attachments/", views.AttachmentUploadView.as_view(), name="attachments"),
    path(
        "attachments/<int:attachment_id>/file/",
        views.AttachmentFileView.as_view(),
        name="attachment-file",
    ),
    path("stats/", views.StatsView.as_view(), name="stats"),
]
