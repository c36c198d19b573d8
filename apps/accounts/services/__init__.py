"""Writes to accounts: users, memberships, invitations, API keys, one-time login links.

Every change that matters to a tenant is written to that tenant's audit trail. One module per
concern; this package is the surface other apps import:

- `actors`: who acts on a tenant (`Actor`) and which roles it may grant;
- `users`: signup, operator-created tenants, verified addresses, renaming a workspace;
- `members`: changing and removing members;
- `invitations`: inviting, accepting, revoking, expiring;
- `api_keys`: creating, revoking and authenticating API keys;
- `login_links`: one-time links from the public host to the tenant host;
- `common`: input checks and hashing they share.
"""

from .actors import Actor, roles_within_reach
from .api_keys import api_key_authenticate, api_key_create, api_key_revoke
from .invitations import (
    invitation_accept,
    invitation_create,
    invitation_get_pending,
    invitation_revoke,
    invitation_send_email,
    invitation_url,
    invitations_expire,
)
from .login_links import LOGIN_LINK_SECONDS, login_link_consume, login_link_create
from .members import membership_remove, membership_set_role
from .users import Signup, signup_company, tenant_create_with_owner, user_mark_email_verified, workspace_rename

__all__ = [
    "LOGIN_LINK_SECONDS",
    "Actor",
    "Signup",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "invitation_accept",
    "invitation_create",
    "invitation_get_pending",
    "invitation_revoke",
    "invitation_send_email",
    "invitation_url",
    "invitations_expire",
    "login_link_consume",
    "login_link_create",
    "membership_remove",
    "membership_set_role",
    "roles_within_reach",
    "signup_company",
    "tenant_create_with_owner",
    "user_mark_email_verified",
    "workspace_rename",
]
