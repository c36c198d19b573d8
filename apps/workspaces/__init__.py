"""What is done to a whole workspace, across the apps that hold its data: the demo workspace's
content (demo.py, `manage.py seed_demo`), exports (export.py), deletion and purge (deletion.py,
`manage.py delete_tenant`), re-encrypting every workspace's secrets (`manage.py
rotate_encryption_key`), and the `/api/v1/tenant/` endpoints.

It sits above the domain apps and below the dashboard (docs/architecture.md, "Layers"), so
that `apps.tenants` (the tenant rows, hosts and schemas) never imports the apps whose data
lives in a tenant's schema. No models: the deletion and export records are `apps.tenants`'.
"""
