"""Changing and removing a workspace's members, within the actor's reach."""

from __future__ import annotations

from django.db import transaction

from apps.audit.services import audit_action
from syntera import realtime
from syntera.errors import ApplicationError

from ..models import Membership, Role
from .actors import Actor, _beyond_actor, _guard_role_grant
from .common import _role


def _guard_member_change(*, actor: Actor, target: Membership, new_role: str | None) -> None:
    if not actor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins manage members.", code="permission_denied", status_code=403)
    actor.require_scope("members:write")
    touching_owner = target.role == Role.OWNER or new_role == Role.OWNER
    if touching_owner and actor.role != Role.OWNER:
        raise ApplicationError(
            "Only an owner can grant or change the owner role.", code="permission_denied", status_code=403
        )
    if target.role == Role.OWNER and new_role != Role.OWNER:
        owners = Membership.objects.filter(tenant=target.tenant, role=Role.OWNER).count()
        if owners <= 1:
            raise ApplicationError("A workspace needs at least one owner.", code="last_owner", status_code=409)
    # Nobody changes or removes a member who has more access than they do, nor grants more.
    reason = _beyond_actor(actor=actor, role=target.role)
    if reason:
        raise ApplicationError(f"You cannot change this member: {reason}.", code="permission_denied", status_code=403)
    if new_role is not None:
        _guard_role_grant(actor=actor, role=new_role)


@transaction.atomic
def membership_set_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    new_role = _role(role)
    _guard_member_change(actor=actor, target=membership, new_role=new_role)
    old = membership.role
    membership.role = new_role
    membership.save(update_fields=["role"])
    audit_action(
        actor, "member.role_changed", membership, {"email": membership.user.email, "from": old, "to": new_role}
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: Actor, membership: Membership) -> None:
    if actor.membership_id != membership.pk:
        _guard_member_change(actor=actor, target=membership, new_role=None)
    elif (
        membership.role == Role.OWNER
        and Membership.objects.filter(tenant=membership.tenant, role=Role.OWNER).count() <= 1
    ):
        raise ApplicationError("A workspace needs at least one owner.", code="last_owner", status_code=409)
    audit_action(actor, "member.removed", membership, {"email": membership.user.email, "role": membership.role})
    realtime.disconnect_user(membership.tenant.schema_name, membership.user_id)
    membership.delete()
