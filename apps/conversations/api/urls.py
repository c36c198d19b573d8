from django.urls import path

from . import views

urlpatterns = [
    path("inboxes/", views.InboxListView.as_view(), name="api-inboxes"),
    path("inboxes/<int:inbox_id>/", views.InboxDetailView.as_view(), name="api-inbox"),
    path("inboxes/<int:inbox_id>/rotate-key", views.InboxRotateKeyView.as_view(), name="api-inbox-rotate"),
    path("inboxes/<int:inbox_id>/abuse/", views.InboxAbuseView.as_view(), name="api-inbox-abuse"),
    path(
        "inboxes/<int:inbox_id>/rotate-identity-secret",
        views.InboxRotateIdentitySecretView.as_view(),
        name="api-inbox-rotate-identity-secret",
    ),
    path("conversations/", views.ConversationListView.as_view(), name="api-conversations"),
    path("conversations/<int:conversation_id>/", views.ConversationDetailView.as_view(), name="api-conversation"),
    path("conversations/<int:conversation_id>/take-over", views.TakeOverView.as_view(), name="api-take-over"),
    path("conversations/<int:conversation_id>/hand-back", views.HandBackView.as_view(), name="api-hand-back"),
    path(
        "conversations/<int:conversation_id>/suggested-reply",
        views.SuggestedReplyView.as_view(),
        name="api-suggested-reply",
    ),
    path("conversations/<int:conversation_id>/messages/", views.MessageListView.as_view(), name="api-messages"),
]
