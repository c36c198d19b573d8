"""Fixtures for conversation tests: alpha's owner as an Actor inside alpha's schema, a
web-chat inbox with an agent on a small help knowledge base."""

from __future__ import annotations

from typing import Any

import pytest

from apps.agents.tests.conftest import HELP_ARTICLES, make_kb, prompts, standin  # noqa: F401  (fixtures)


@pytest.fixture
def inbox(owner: Any, django_capture_on_commit_callbacks: Any) -> Any:
    from apps.agents.services import agent_create
    from apps.conversations.services import inbox_create

    kb = make_kb(owner, django_capture_on_commit_callbacks, HELP_ARTICLES)
    agent = agent_create(editor=owner, name="Ava", knowledge_bases=[kb.pk], greeting="Hi! Ask me anything.")
    return inbox_create(
        actor=owner, name="Website", agent_id=agent.pk, allowed_origins=["https://shop.example"], title="Help"
    )
