from .env import env_bool, env_str
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
