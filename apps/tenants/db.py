"""The default connection, typed as django-tenants' schema-aware wrapper."""

from typing import Any, cast

from django.db import connection as _connection

connection: Any = cast(Any, _connection)
