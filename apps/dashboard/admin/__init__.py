"""Both Django admins, in one place (docs/architecture.md, "Where things live"):

- the operator admin, `django.contrib.admin.site` at `/admin/` on the public host: tenants,
  domains, plans, deletions, exports (tenants.py) and accounts (accounts.py); its rate-limited
  password views are in operator.py;
- the workspace admin, `site.tenant_admin_site` at `/admin/` on a tenant's host: that tenant's
  data, read-only, for its owners and admins; one module per app registers its models.

The domain apps do not know the admin exists: Django's admin autodiscovery imports this
package (the dashboard's `admin` module), which imports every registration module.
"""

from . import accounts, agents, audit, conversations, crm, knowledge, routing, tenants

__all__ = ["accounts", "agents", "audit", "conversations", "crm", "knowledge", "routing", "tenants"]
