"""`manage.py rotate_encryption_key`: every stored secret, in every tenant schema, moves to the
first key of FIELD_ENCRYPTION_KEYS, so the old key can then be removed."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from apps.agents.credentials import credential_set, credentials_for
from apps.agents.models import ProviderCredential
from apps.audit.models import AuditEvent
from syntera import crypto

OLD, NEW, LOST = (Fernet.generate_key().decode() for _ in range(3))
SECRETS = {"alpha": "sk-alpha-0123456789abcdef", "beta": "sk-beta-0123456789abcdef"}


@pytest.fixture(autouse=True)
def _everything_under_old(settings: Any, db: None) -> None:
    """Secrets the workspaces already hold (each inbox's identity secret) start under OLD too,
    so each test knows what every stored secret is encrypted with."""
    settings.FIELD_ENCRYPTION_KEYS = [OLD, *settings.FIELD_ENCRYPTION_KEYS]
    _run()
    settings.FIELD_ENCRYPTION_KEYS = [OLD]


def _store(tenants: list[Any]) -> None:
    for info in tenants:
        with schema_context(info.schema):
            credential_set(provider="openai", api_key=SECRETS[info.slug], label="test")


def _stored_key(info: Any) -> str | None:
    with schema_context(info.schema):
        credentials = credentials_for("openai")
    return credentials.api_key if credentials else None


def _run(*args: str) -> str:
    out = StringIO()
    call_command("rotate_encryption_key", *args, stdout=out)
    return out.getvalue()


def test_rotation_reencrypts_every_tenant_and_the_old_key_can_then_go(
    alpha: Any, beta: Any, settings: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings.OPENAI_API_KEY = ""
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    _store([alpha, beta])
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    assert _stored_key(alpha) is None  # without the old key the secret is unreadable

    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]  # 1. add the new key first
    # Each workspace: its provider key and its inbox's identity secret.
    with pytest.raises(CommandError, match="4 stored secrets are not under the first key"):
        _run("--check")
    out = _run()  # 2. rotate
    assert "alpha: 2 re-encrypted, 0 already under the first key, 0 unreadable" in out
    assert "beta: 2 re-encrypted, 0 already under the first key, 0 unreadable" in out
    assert "total: 4 re-encrypted" in out
    assert "all stored secrets are under the first key" in _run("--check")

    settings.FIELD_ENCRYPTION_KEYS = [NEW]  # 3. drop the old key: everything still reads
    assert _stored_key(alpha) == SECRETS["alpha"] and _stored_key(beta) == SECRETS["beta"]
    for info in (alpha, beta):
        with schema_context(info.schema):
            event = AuditEvent.objects.filter(action="secrets.reencrypted").order_by("-id").first()
            assert event is not None
            assert event.data == {"count": 2} and event.actor_label == "operator"
            token = ProviderCredential.objects.get(provider="openai").api_key_encrypted
            assert SECRETS[info.slug] not in token


def test_rotation_is_idempotent_and_finishes_after_an_interruption(
    alpha: Any, beta: Any, settings: Any, monkeypatch: Any
) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    _store([alpha, beta])
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]

    # The first run dies after alpha (the process is killed, the database goes away...).
    real = crypto.rotate_encrypted_fields
    calls = {"n": 0}

    def dies_on_beta(**kwargs: Any) -> crypto.RotationReport:
        from django.db import connection

        if connection.schema_name == beta.schema:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(**kwargs)

    monkeypatch.setattr(
        "apps.workspaces.management.commands.rotate_encryption_key.rotate_encrypted_fields", dies_on_beta
    )
    with pytest.raises(KeyboardInterrupt):
        _run()
    monkeypatch.undo()
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    assert _stored_key(alpha) == SECRETS["alpha"] and _stored_key(beta) == SECRETS["beta"]  # all readable

    again = _run()
    assert "alpha: 0 re-encrypted, 2 already under the first key" in again
    assert "beta: 2 re-encrypted, 0 already under the first key" in again
    with schema_context(alpha.schema):
        before = ProviderCredential.objects.get(provider="openai").api_key_encrypted
    third = _run()
    assert "total: 0 re-encrypted" in third
    with schema_context(alpha.schema):
        assert ProviderCredential.objects.get(provider="openai").api_key_encrypted == before  # nothing rewritten
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    assert _stored_key(alpha) == SECRETS["alpha"] and _stored_key(beta) == SECRETS["beta"]


def test_secrets_no_key_opens_are_named_and_left_alone(alpha: Any, beta: Any, settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [LOST]
    _store([alpha])
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    _store([beta])
    with schema_context(alpha.schema):
        lost = ProviderCredential.objects.get(provider="openai")
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    with pytest.raises(CommandError) as err:
        _run()
    assert f"alpha agents.ProviderCredential #{lost.pk}" in str(err.value)
    assert "cannot be decrypted with any key" in str(err.value)
    with schema_context(alpha.schema):
        assert ProviderCredential.objects.get(pk=lost.pk).api_key_encrypted == lost.api_key_encrypted
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    assert _stored_key(beta) == SECRETS["beta"]  # the readable ones were still rotated


def test_the_legacy_key_derived_from_secret_key_can_be_printed_for_an_upgrade(settings: Any) -> None:
    settings.SECRET_KEY = "an-explicit-secret-key-of-an-older-deployment-0123456789"
    printed = _run("--print-legacy-key").strip()
    assert printed == crypto.legacy_key_for(settings.SECRET_KEY)
    Fernet(printed.encode())


def test_every_encrypted_column_is_registered_for_rotation() -> None:
    """A new model field holding encrypt() output must be listed in crypto.ENCRYPTED_FIELDS,
    or rotation would skip it and dropping the old key would lose it."""
    found = {
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if "encrypted" in field.name
    }
    assert found == set(crypto.ENCRYPTED_FIELDS)
