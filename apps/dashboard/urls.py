from django.urls import path
from django.views.generic import TemplateView

from . import agent_views, crm_views, inbox_views, knowledge_views, views
from .widget_views import widget_demo

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
    path("dashboard/agents/", agent_views.agents, name="dashboard-agents"),
    path("dashboard/agents/<int:agent_id>/", agent_views.agent_edit, name="dashboard-agent"),
    path("dashboard/agents/<int:agent_id>/delete/", agent_views.agent_delete, name="dashboard-agent-delete"),
    path("dashboard/agents/<int:agent_id>/test/", agent_views.agent_test, name="dashboard-agent-test"),
    path("dashboard/agents/<int:agent_id>/test/turn", agent_views.agent_test_turn, name="dashboard-agent-test-turn"),
    path("dashboard/ai/", agent_views.ai_settings, name="dashboard-ai-settings"),
    path(
        "dashboard/ai/<str:provider>/delete/",
        agent_views.ai_credential_delete,
        name="dashboard-ai-credential-delete",
    ),
    path("dashboard/contacts/", crm_views.contacts, name="dashboard-contacts"),
    path("dashboard/contacts/<int:contact_id>/", crm_views.contact_detail, name="dashboard-contact"),
    path("dashboard/contacts/<int:contact_id>/delete/", crm_views.contact_delete, name="dashboard-contact-delete"),
    path("dashboard/inbox/", inbox_views.inbox, name="dashboard-inbox"),
    path("dashboard/inbox/conversations.json", inbox_views.inbox_json, name="dashboard-inbox-json"),
    path("dashboard/inbox/<int:conversation_id>/", inbox_views.conversation_detail, name="dashboard-conversation"),
    path(
        "dashboard/inbox/<int:conversation_id>/messages.json",
        inbox_views.conversation_messages,
        name="dashboard-conversation-messages",
    ),
    path(
        "dashboard/inbox/<int:conversation_id>/reply/",
        inbox_views.conversation_reply,
        name="dashboard-conversation-reply",
    ),
    path(
        "dashboard/inbox/<int:conversation_id>/action/",
        inbox_views.conversation_action,
        name="dashboard-conversation-action",
    ),
    path("dashboard/inboxes/", inbox_views.inboxes, name="dashboard-inboxes"),
    path("dashboard/inboxes/<int:inbox_id>/", inbox_views.inbox_settings, name="dashboard-inbox-settings"),
    path(
        "dashboard/inboxes/<int:inbox_id>/rotate-key/",
        inbox_views.inbox_rotate_key,
        name="dashboard-inbox-rotate-key",
    ),
    path("dashboard/inboxes/<int:inbox_id>/active/", inbox_views.inbox_active, name="dashboard-inbox-active"),
    path("dashboard/inboxes/<int:inbox_id>/demo/", widget_demo, name="dashboard-inbox-demo"),
]
