"""Encryption of secrets stored in the database (tenants' provider API keys).

Fernet (AES-128-CBC + HMAC-SHA256) with the keys of `FIELD_ENCRYPTION_KEYS` (comma-separated
Fernet keys; the first encrypts, all decrypt), a key of its own, never derived from
SECRET_KEY (syntera/settings/keys.py). Every column holding such a ciphertext is listed in
`ENCRYPTED_FIELDS`, so that `manage.py rotate_encryption_key` re-encrypts all of them with the
first key; after that the older keys can be removed (docs/subsystems/operations.md).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction

# "<app label>.<Model>.<field>" of every column that stores `encrypt()` output. A test checks
# that every model field named *_encrypted is listed here.
ENCRYPTED_FIELDS: tuple[str, ...] = (
    "agents.ProviderCredential.api_key_encrypted",
    "conversations.Inbox.identity_secret_encrypted",
)


class DecryptionError(Exception):
    pass


@cache
def _fernets(keys: tuple[str, ...]) -> tuple[Fernet, MultiFernet]:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: no key to encrypt stored secrets with.")
    try:
        fernets = [Fernet(k.encode()) for k in keys]
    except ValueError as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key.") from exc
    return fernets[0], MultiFernet(fernets)


def _configured() -> tuple[Fernet, MultiFernet]:
    # Keyed on the configured keys, so a changed setting takes effect without a restart hook.
    return _fernets(tuple(k.strip() for k in settings.FIELD_ENCRYPTION_KEYS if k.strip()))


def encrypt(plaintext: str) -> str:
    return _configured()[1].encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _configured()[1].decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("The stored secret cannot be decrypted with the configured keys.") from exc


def legacy_key_for(secret_key: str) -> str:
    """The Fernet key that earlier versions derived from SECRET_KEY when FIELD_ENCRYPTION_KEYS
    was unset: put it after the new key in FIELD_ENCRYPTION_KEYS to rotate what it encrypted."""
    digest = hashlib.sha256(b"syntera-field-encryption:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


# --- rotation ----------------------------------------------------------------------------------


@dataclass
class RotationReport:
    """What a rotation found in one schema: rows re-encrypted with the first key (or that
    would be, when only checking), rows already under it, and rows no configured key opens."""

    rotated: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)


def encrypted_fields(*, tenant_apps: bool) -> list[tuple[type[models.Model], str]]:
    """The registered encrypted columns whose tables live in tenant schemas (or in public)."""
    found = []
    for path in ENCRYPTED_FIELDS:
        label, model_name, field_name = path.split(".")
        model = apps.get_model(label, model_name)
        in_tenant_schema = model._meta.app_config.name in settings.TENANT_APPS  # type: ignore[union-attr]
        if in_tenant_schema == tenant_apps:
            found.append((model, field_name))
    return found


def _rotate_row(model: type[models.Model], field_name: str, pk: object, *, write: bool, report: RotationReport) -> None:
    first, every = _configured()
    with transaction.atomic():
        # Locked, so a secret saved meanwhile is never overwritten with a stale re-encryption.
        token = model._default_manager.select_for_update().filter(pk=pk).values_list(field_name, flat=True).first()
        if not token:
            return
        try:
            first.decrypt(token.encode())
        except InvalidToken:
            pass
        else:
            report.current += 1
            return
        try:
            rotated = every.rotate(token.encode()).decode()
        except InvalidToken:
            report.unreadable.append(f"{model._meta.label} #{pk}")
            return
        if write:
            model._default_manager.filter(pk=pk).update(**{field_name: rotated})
        report.rotated += 1


def rotate_encrypted_fields(*, tenant_apps: bool, write: bool = True) -> RotationReport:
    """Re-encrypt, in the current schema, every stored secret that is not yet under the first
    key of FIELD_ENCRYPTION_KEYS. One short transaction per row: an interrupted run leaves
    every row readable (old or new key), and running again finishes the job."""
    report = RotationReport()
    for model, field_name in encrypted_fields(tenant_apps=tenant_apps):
        pks = model._default_manager.exclude(**{field_name: ""}).order_by("pk").values_list("pk", flat=True)
        for pk in list(pks):
            _rotate_row(model, field_name, pk, write=write, report=report)
    return report
