"""`/api/v1/` — shared by the public and tenant URLconfs (the API key picks the tenant)."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.accounts.api.urls")),
    path("", include("apps.workspaces.api.urls")),
    path("", include("apps.audit.api.urls")),
    path("", include("apps.knowledge.api.urls")),
    path("", include("apps.agents.api.urls")),
    path("", include("apps.crm.api.urls")),
    path("", include("apps.conversations.api.urls")),
    path("", include("apps.routing.api.urls")),
]
