"""The agents app's fixtures, for its tests that drive conversations too."""

from apps.agents.tests.conftest import agent, help_kb, prompts, standin  # noqa: F401  (fixtures)
