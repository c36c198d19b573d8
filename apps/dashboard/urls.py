from django.urls import path
from django.views.generic import TemplateView

from . import knowledge_views, views

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("login/link/", views.login_link, name="login-link"),
    path("logout/", views.logout_view, name="logout"),
    path("invite/<str:token>/", views.accept_invitation, name="accept-invitation"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path(
        "password-reset/sent/",
        TemplateView.as_view(template_name="dashboard/password_reset_sent.html"),
        name="password-reset-sent",
    ),
    path("password-reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("account/", views.account, name="dashboard-account"),
    path("dashboard/", views.home, name="dashboard-home"),
    path("dashboard/members/", views.members, name="dashboard-members"),
    path("dashboard/members/<int:member_id>/", views.member_update, name="dashboard-member-update"),
    path(
        "dashboard/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="dashboard-invitation-revoke"
    ),
    path("dashboard/api-keys/", views.api_keys, name="dashboard-api-keys"),
    path("dashboard/api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="dashboard-api-key-revoke"),
    path("dashboard/audit/", views.audit_log, name="dashboard-audit"),
    path("dashboard/knowledge/", knowledge_views.knowledge_list, name="dashboard-knowledge"),
    path("dashboard/knowledge/search/", knowledge_views.playground, name="dashboard-knowledge-search"),
    path("dashboard/knowledge/<int:kb_id>/", knowledge_views.knowledge_base, name="dashboard-knowledge-base"),
    path("dashboard/knowledge/<int:kb_id>/delete/", knowledge_views.knowledge_base_delete, name="dashboard-kb-delete"),
    path("dashboard/knowledge/<int:kb_id>/status.json", knowledge_views.sources_status, name="dashboard-kb-status"),
    path(
        "dashboard/knowledge/<int:kb_id>/sources/<int:source_id>/",
        knowledge_views.source_edit,
        name="dashboard-source-edit",
    ),
    path(
        "dashboard/knowledge/<int:kb_id>/sources/<int:source_id>/action/",
        knowledge_views.source_action,
        name="dashboard-source-action",
    ),
]
