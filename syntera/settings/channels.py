from .env import env_bool, env_int, env_str
from .redis import REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [env_str("CHANNEL_LAYER_URL", REDIS_URL)], "capacity": 1000, "expiry": 30},
    }
}

# Consumers' database calls run on a thread pool (each thread its own connection); true puts
# them all on one shared thread, Channels' default (see apps/tenants/channels.py).
CHANNELS_DB_SHARED_THREAD = env_bool("CHANNELS_DB_SHARED_THREAD", False)
# How many threads of a web process run the consumers' database calls at once, each with its
# own connection (or a pooled one, DATABASE_POOL_SIZE); 0: the event loop's default pool,
# min(32, cores + 4) threads (docs/deployment.md, "Sockets per box").
CHANNELS_DB_THREADS = env_int("CHANNELS_DB_THREADS", 0)
