"""pgvector goes in the public schema, once, from this shared-app migration.

Created from a tenant-app migration it would land in the first tenant's schema and every
later tenant's migration would fail with `type "vector" does not exist`. The public tenant
row is the one django-tenants expects for the public schema.
"""

from django.db import migrations


def create_public_tenant(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    Tenant.objects.get_or_create(schema_name="public", defaults={"name": "Public", "slug": "public"})


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunPython(create_public_tenant, migrations.RunPython.noop),
    ]
