"""Scopes: what an API key may do, and what a person's role lets them do, in one vocabulary.

Each API view names the resource(s) it reads or changes (`scope_resource`); GET/HEAD/OPTIONS
need `<resource>:read`, other methods `<resource>:write`, unless the view names its write
scopes itself (`write_scopes`). A view that names no resource is closed to API keys. Scopes
also bound what anyone can grant: a new key's scopes, an invitation's or a member's role
(docs/adr/0013-scopes-bound-grants.md). Later apps add their resources here.
"""

from __future__ import annotations

from typing import Any

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
    "inboxes",
    "llm_credentials",
    "exports",
)

# Scopes that are neither a read nor a write of a whole resource: `agents:test` runs an agent
# (a test turn or a batch test, spending AI quota) without changing it.
EXTRA_SCOPES = ("agents:test",)

ALL_SCOPES: tuple[str, ...] = (
    *(f"{r}:{a}" for r in RESOURCES for a in ("read", "write")),
    *EXTRA_SCOPES,
)

# Audit trails, model credentials and exports of the whole workspace are admin business.
_ADMIN_READS = ("audit:read", "llm_credentials:read", "exports:read")
_STAFF_READS = tuple(s for s in ALL_SCOPES if s.endswith(":read") and s not in _ADMIN_READS)

# What a person's role lets them do, in scope terms (reported by /api/v1/me/, and the bound
# on what they may grant). Routing configuration is written by owners and admins; agents read
# it, and what they do there (assigning a conversation, setting their own presence) is
# `conversations:write`. Inboxes (channel settings and their keys) are admin business.
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "owner": ALL_SCOPES,
    "admin": ALL_SCOPES,
    "agent": (*_STAFF_READS, "agents:test", "crm:write", "conversations:write"),
    "viewer": _STAFF_READS,
}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def scope_for(resource: str, method: str) -> str:
    action = "read" if method.upper() in SAFE_METHODS else "write"
    return f"{resource}:{action}"


def scopes_for_view(view: Any, method: str) -> tuple[str, ...] | None:
    """Every scope a call of `method` on `view` needs; None when the view names no resource.

    A view may declare `reads_only = True` (its POST, e.g. a search, changes nothing: it needs
    the read scopes), `scope_resource` as one resource or a tuple of them (all are needed), and
    `write_scopes` to name its write scopes explicitly.
    """
    method = "GET" if getattr(view, "reads_only", False) else (method or "GET").upper()
    resources = getattr(view, "scope_resource", None)
    if not resources:
        return None
    if isinstance(resources, str):
        resources = (resources,)
    if method not in SAFE_METHODS and getattr(view, "write_scopes", None):
        return tuple(view.write_scopes)
    return tuple(scope_for(resource, method) for resource in resources)
