"""Constants and types shared by the test suites."""

from __future__ import annotations

from dataclasses import dataclass

PASSWORD = "correct-horse-battery-staple-42"


@dataclass
class TenantInfo:
    """A tenant created once per test session, with its canary rows."""

    slug: str
    schema: str
    host: str
    tenant_id: int
    owner_email: str
    api_key: str
    canary_key_name: str
    canary_invite_email: str
    canary_action: str
