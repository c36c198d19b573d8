from .env import env_str
from .redis import REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [env_str("CHANNEL_LAYER_URL", REDIS_URL)], "capacity": 1000, "expiry": 30},
    }
}
