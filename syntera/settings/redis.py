from .env import env_int, env_str

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

# Django's Redis cache with one connection pool per process (syntera/cache.py): Django's own
# gives every asyncio context, so every open WebSocket, a pool and a connection of its own.
CACHES = {
    "default": {
        "BACKEND": "syntera.cache.RedisCache",
        "LOCATION": env_str("CACHE_URL", REDIS_URL),
        # Keys carry the schema name, so one tenant can never read another's entry.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "syntera"),
        "TIMEOUT": env_int("CACHE_TIMEOUT", 300),
    },
    # Sessions are global rows (public schema): their cache keys must not depend on the
    # schema a request happens to be in, or a logout on one path leaves a live copy on another.
    "sessions": {
        "BACKEND": "syntera.cache.RedisCache",
        "LOCATION": env_str("CACHE_URL", REDIS_URL),
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "syntera") + ":sessions",
        "TIMEOUT": env_int("SESSION_COOKIE_AGE", 60 * 60 * 12),
    },
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_CACHE_ALIAS = "sessions"
