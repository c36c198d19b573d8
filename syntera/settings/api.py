from datetime import timedelta

from .env import env_int, env_str
from .keys import JWT_SIGNING_KEY

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.APIKeyAuthentication",
        "apps.accounts.authentication.TenantJWTAuthentication",
        "apps.accounts.authentication.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.permissions.IsTenantMember"],
    "DEFAULT_PAGINATION_CLASS": "syntera.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "syntera.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["syntera.parsers.StrictJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Syntera API",
    "DESCRIPTION": 'Multi-tenant conversational-AI platform. Errors are `{"error": {"code", "detail", "fields"}}`.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "syntera.errors.add_error_responses",
    ],
    "SECURITY": [{"bearerAuth": []}],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "API key (sk_live_...) or JWT"}
        }
    },
    "AUTHENTICATION_WHITELIST": [],
    "ENUM_NAME_OVERRIDES": {
        "SourceTypeEnum": "apps.knowledge.models.Source.Type",
        "SourceStatusEnum": "apps.knowledge.models.Source.Status",
        "NewSourceTypeEnum": ["url", "text", "faq"],
        "UploadSourceTypeEnum": ["file", "faq"],
        "RoleEnum": "apps.accounts.models.Role",
        "AgentProviderEnum": "apps.agents.models.Agent.Provider",
        "ConversationStatusEnum": "apps.conversations.models.Conversation.Status",
        "LeadStatusEnum": "apps.crm.models.Lead.Status",
        "PresenceStatusEnum": ["online", "away", "offline"],
        "RoutingRuleHoursEnum": ["any", "open", "closed"],
        "BatchTestStatusEnum": "apps.agents.models.BatchTest.Status",
    },
}

API_KEY_PREFIX = env_str("API_KEY_PREFIX", "sk_live_")
