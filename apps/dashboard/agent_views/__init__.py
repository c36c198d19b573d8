"""Dashboard pages for AI agents (see pages.py and test_chat.py)."""

from .pages import (
    agent_delete,
    agent_duplicate,
    agent_edit,
    agent_export,
    agent_import,
    agent_version_restore,
    agents,
    ai_credential_delete,
    ai_settings,
    knowledge_gap_answer,
    knowledge_gap_dismiss,
)
from .test_chat import agent_batch, agent_batch_csv, agent_test, agent_test_turn

__all__ = [
    "agent_batch",
    "agent_batch_csv",
    "agent_delete",
    "agent_duplicate",
    "agent_edit",
    "agent_export",
    "agent_import",
    "agent_test",
    "agent_test_turn",
    "agent_version_restore",
    "agents",
    "ai_credential_delete",
    "ai_settings",
    "knowledge_gap_answer",
    "knowledge_gap_dismiss",
]
