from apps.conversations.tests.conftest import inbox  # noqa: F401
