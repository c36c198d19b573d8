from django.urls import path

from . import views

urlpatterns = [
    path("agents/", views.AgentListView.as_view(), name="api-agents"),
    path("agents/import", views.AgentImportView.as_view(), name="api-agent-import"),
    path("agents/<int:agent_id>/export", views.AgentExportView.as_view(), name="api-agent-export"),
    path("agents/<int:agent_id>/", views.AgentDetailView.as_view(), name="api-agent"),
    path("agents/<int:agent_id>/versions/", views.AgentVersionsView.as_view(), name="api-agent-versions"),
    path(
        "agents/<int:agent_id>/versions/<int:number>/restore",
        views.AgentVersionRestoreView.as_view(),
        name="api-agent-version-restore",
    ),
    path("agents/<int:agent_id>/duplicate", views.AgentDuplicateView.as_view(), name="api-agent-duplicate"),
    path("agents/<int:agent_id>/test", views.AgentTestView.as_view(), name="api-agent-test"),
    path("agents/<int:agent_id>/stats", views.AgentStatsView.as_view(), name="api-agent-stats"),
    path("agents/<int:agent_id>/knowledge-gaps/", views.KnowledgeGapListView.as_view(), name="api-agent-gaps"),
    path(
        "agents/<int:agent_id>/knowledge-gaps/<int:gap_id>",
        views.KnowledgeGapDetailView.as_view(),
        name="api-agent-gap",
    ),
    path(
        "agents/<int:agent_id>/knowledge-gaps/<int:gap_id>/answer",
        views.KnowledgeGapAnswerView.as_view(),
        name="api-agent-gap-answer",
    ),
    path("agents/<int:agent_id>/batch-tests/", views.BatchTestListView.as_view(), name="api-agent-batch-tests"),
    path(
        "agents/<int:agent_id>/batch-tests/<int:batch_id>",
        views.BatchTestDetailView.as_view(),
        name="api-agent-batch-test",
    ),
    path("llm-credentials/", views.CredentialListView.as_view(), name="api-llm-credentials"),
    path("llm-credentials/<str:provider>", views.CredentialDetailView.as_view(), name="api-llm-credential"),
    path("ai-usage", views.UsageView.as_view(), name="api-ai-usage"),
]
