import dj_database_url

from .env import env_int, env_str

# DATABASE_POOL_SIZE > 0: the process borrows its connections from a pool of at most that many
# (psycopg's pool, through Django) and gives each back at the end of its request or task, and
# while an AI turn waits on a remote model (`apps.tenants.db.release_connection`). Meant for
# the `llm` worker, whose hundred threads would otherwise hold a hundred connections;
# processes that use one connection at a time keep theirs (CONN_MAX_AGE). Not for a process
# that forks after connecting (a prefork worker's parent).
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 0)

_db = dj_database_url.parse(
    env_str("DATABASE_URL", "postgresql://postgres@localhost:5432/syntera"),
    conn_max_age=0 if DATABASE_POOL_SIZE else env_int("DATABASE_CONN_MAX_AGE", 60),
    conn_health_checks=True,
)
_db["ENGINE"] = "django_tenants.postgresql_backend"
if DATABASE_POOL_SIZE:
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        # A borrower waits this long for a free connection before its request or task fails.
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 30),
    }
_db.setdefault("TEST", {})
_db["TEST"]["NAME"] = env_str("DATABASE_TEST_NAME", "test_" + str(_db.get("NAME") or "syntera"))
DATABASES = {"default": _db}
