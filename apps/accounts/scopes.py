"""API key scopes. Each API view names a resource; GET/HEAD/OPTIONS need `<resource>:read`,
other methods `<resource>:write`. Later apps add their resources here."""

RESOURCES = (
    "tenant",
    "members",
    "invitations",
    "api_keys",
    "audit",
    "knowledge",
    "agents",
    "crm",
    "conversations",
    "routing",
)

ALL_SCOPES: tuple[str, ...] = tuple(f"{r}:{a}" for r in RESOURCES for a in ("read", "write"))


# What a person's role lets them do, in scope terms (reported by /api/v1/me/). Routing
# configuration is written by owners and admins; agents read it, and what they do there
# (assigning a conversation, setting their own presence) is `conversations:write`.
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "owner": ALL_SCOPES,
    "admin": ALL_SCOPES,
    "agent": (
        *(s for s in ALL_SCOPES if s.endswith(":read") and s != "audit:read"),
        "crm:write",
        "conversations:write",
    ),
    "viewer": tuple(s for s in ALL_SCOPES if s.endswith(":read") and s != "audit:read"),
}


def scope_for(resource: str, method: str) -> str:
    action = "read" if method.upper() in {"GET", "HEAD", "OPTIONS"} else "write"
    return f"{resource}:{action}"
