import dj_database_url

from .env import env_int, env_str

_db = dj_database_url.parse(
    env_str("DATABASE_URL", "postgresql://postgres@localhost:5432/syntera"),
    conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    conn_health_checks=True,
)
_db["ENGINE"] = "django_tenants.postgresql_backend"
_db.setdefault("TEST", {})
_db["TEST"]["NAME"] = env_str("DATABASE_TEST_NAME", "test_" + str(_db.get("NAME") or "syntera"))
DATABASES = {"default": _db}
