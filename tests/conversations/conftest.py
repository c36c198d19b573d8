"""The conversations app's fixtures, for its tests that drive the whole ASGI application and
routing too."""

from apps.agents.tests.conftest import prompts, standin  # noqa: F401  (fixtures)
from apps.conversations.tests.conftest import inbox  # noqa: F401  (fixtures)
