"""Keys keep what they could do when scopes were split out of broader ones: inbox settings
and keys (once `conversations:*`), LLM credentials (once `agents:*`) and running agent tests
(once `agents:write`)."""

from typing import Any

from django.db import migrations

SPLIT = {
    "conversations:read": ("inboxes:read",),
    "conversations:write": ("inboxes:write",),
    "agents:read": ("llm_credentials:read",),
    "agents:write": ("llm_credentials:write", "agents:test"),
}


def forwards(apps: Any, schema_editor: Any) -> None:
    APIKey = apps.get_model("accounts", "APIKey")
    for key in APIKey.objects.all().only("id", "scopes"):
        scopes = set(key.scopes or [])
        wider = scopes | {new for old, news in SPLIT.items() if old in scopes for new in news}
        if wider != scopes:
            APIKey.objects.filter(pk=key.pk).update(scopes=sorted(wider))


def backwards(apps: Any, schema_editor: Any) -> None:
    APIKey = apps.get_model("accounts", "APIKey")
    added = {new for news in SPLIT.values() for new in news}
    for key in APIKey.objects.all().only("id", "scopes"):
        scopes = set(key.scopes or [])
        if scopes & added:
            APIKey.objects.filter(pk=key.pk).update(scopes=sorted(scopes - added))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_api_key_created_by_key")]

    operations = [migrations.RunPython(forwards, backwards)]
