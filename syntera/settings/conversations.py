from .env import env_bool, env_int, env_str

# Where transcripts live: "postgres" (default, the tenant's schema) or "mongodb" (MONGODB_URL).
CONVERSATION_STORE = env_str("CONVERSATION_STORE", "postgres")
MONGODB_URL = env_str("MONGODB_URL", "")
# Widget WebSocket limits.
WIDGET_MAX_FRAME = env_int("WIDGET_MAX_FRAME", 16 * 1024)  # bytes of one client frame
WIDGET_MAX_MESSAGE_CHARS = env_int("WIDGET_MAX_MESSAGE_CHARS", 4000)
WIDGET_RATE_PER_CONNECTION = env_int("WIDGET_RATE_PER_CONNECTION", 20)  # messages per 10 s
WIDGET_RATE_PER_IP = env_int("WIDGET_RATE_PER_IP", 120)  # messages per minute, all connections
WIDGET_FRAME_RATE = env_int("WIDGET_FRAME_RATE", 50)  # frames of any kind per 10 s per connection
# Behind a reverse proxy, take the visitor's address from X-Forwarded-For (first entry).
WIDGET_TRUST_X_FORWARDED_FOR = env_bool("WIDGET_TRUST_X_FORWARDED_FOR", False)
