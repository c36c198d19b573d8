"""Fixtures for CRM tests: alpha's owner as an Actor inside alpha's schema."""

from __future__ import annotations

from apps.agents.tests.conftest import owner  # noqa: F401  (fixture)
