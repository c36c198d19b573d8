"""Checks and clean-up shared by the knowledge services."""

from __future__ import annotations

import hashlib

from django.db import connection, transaction

from apps.accounts.models import Role
from apps.accounts.services import Actor
from syntera.errors import ApplicationError

from ..stores import get_store


def _require_admin(editor: Actor) -> None:
    if not editor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins change knowledge.", code="permission_denied", status_code=403)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _after_delete(chunk_ids: list[int], files: list[str]) -> None:
    schema = connection.schema_name  # type: ignore[attr-defined]

    def cleanup() -> None:
        from django.core.files.storage import default_storage

        get_store().delete(schema=schema, chunk_ids=chunk_ids)
        for name in files:
            default_storage.delete(name)

    # robust: the rows are gone already; a store outage must not turn that into an error
    # (leftover vectors are never shown: search drops hits whose chunk row is missing).
    transaction.on_commit(cleanup, robust=True)
