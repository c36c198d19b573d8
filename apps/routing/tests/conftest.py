from apps.agents.tests.conftest import owner  # noqa: F401  (fixtures)
from apps.conversations.tests.conftest import inbox  # noqa: F401
