"""Who acts on a tenant (`Actor`: a member or an API key) and which roles it may grant.

Every service that changes a tenant takes an `Actor` and checks its role and scopes.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.tenants.models import Tenant
from syntera.errors import ApplicationError

from ..models import ROLE_RANK, APIKey, Membership, Role, User
from ..scopes import ROLE_SCOPES


@dataclass(frozen=True)
class Actor:
    """Who is acting on a tenant: a member (their role, and that role's scopes) or an API key
    (admin rank, narrowed to its own scopes). Services check roles and scopes against this,
    never the edge; nobody can grant more than the actor holds (docs/adr/0013-scopes-bound-grants.md).

    `granted_scopes` None means "what the role allows" (`ROLE_SCOPES`): a member, a command.
    """

    tenant: Tenant
    role: str
    user: User | None = None
    label: str = ""
    ip: str | None = None
    membership_id: int | None = None
    granted_scopes: frozenset[str] | None = None
    key: APIKey | None = None

    @classmethod
    def for_membership(cls, membership: Membership, ip: str | None = None) -> Actor:
        return cls(
            tenant=membership.tenant,
            role=membership.role,
            user=membership.user,
            label=membership.user.email,
            ip=ip,
            membership_id=membership.pk,
        )

    @classmethod
    def for_api_key(cls, key: APIKey, ip: str | None = None) -> Actor:
        return cls(
            tenant=key.tenant,
            role=Role.ADMIN,
            label=f"api-key:{key.name} ({key.public_id})",
            ip=ip,
            granted_scopes=frozenset(key.scopes),
            key=key,
        )

    @property
    def scopes(self) -> frozenset[str]:
        if self.granted_scopes is not None:
            return self.granted_scopes
        return frozenset(ROLE_SCOPES.get(self.role, ()))

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(minimum)]

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            who = "This API key" if self.key is not None else f"Your role ({self.role})"
            raise ApplicationError(f"{who} lacks the {scope} scope.", code="permission_denied", status_code=403)


def _beyond_actor(*, actor: Actor, role: str) -> str | None:
    """Why `actor` may not give (or manage someone with) `role`; None when it may. A role
    is within reach of an actor who ranks at least as high and holds every one of its scopes;
    the owner role is within reach of owners only."""
    if role == Role.OWNER and actor.role != Role.OWNER:
        return "only an owner can grant or change the owner role"
    if ROLE_RANK[Role(role)] > ROLE_RANK[Role(actor.role)]:
        return f"the {role} role ranks above yours ({actor.role})"
    beyond = sorted(set(ROLE_SCOPES[role]) - actor.scopes)
    if beyond:
        return f"the {role} role has scopes you lack ({', '.join(beyond)})"
    return None


def roles_within_reach(*, actor: Actor) -> list[str]:
    """The roles `actor` may invite or set (and the members it may change), highest first."""
    return [role for role in reversed(Role.values) if _beyond_actor(actor=actor, role=role) is None]


def _guard_role_grant(*, actor: Actor, role: str) -> None:
    reason = _beyond_actor(actor=actor, role=role)
    if reason:
        detail = f"You cannot grant the {role} role: {reason}."
        raise ApplicationError(detail, code="permission_denied", status_code=403, fields={"role": [detail]})
