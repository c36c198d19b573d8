from django.urls import path

from . import views

urlpatterns = [
    path("teams/", views.TeamListView.as_view(), name="api-teams"),
    path("teams/<int:team_id>/", views.TeamDetailView.as_view(), name="api-team"),
    path("intents/", views.IntentListView.as_view(), name="api-intents"),
    path("intents/detect", views.IntentDetectView.as_view(), name="api-intent-detect"),
    path("intents/<int:intent_id>/", views.IntentDetailView.as_view(), name="api-intent"),
    path("routing-rules/", views.RoutingRuleListView.as_view(), name="api-routing-rules"),
    path("routing-rules/<int:rule_id>/", views.RoutingRuleDetailView.as_view(), name="api-routing-rule"),
    path("queue/", views.QueueView.as_view(), name="api-queue"),
    path("conversations/<int:conversation_id>/assign", views.AssignView.as_view(), name="api-assign"),
    path("presence/", views.PresenceListView.as_view(), name="api-presence"),
    path("presence/me", views.PresenceMeView.as_view(), name="api-presence-me"),
    path("sla-events/", views.SLAEventListView.as_view(), name="api-sla-events"),
]
