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
# Older switch for a proxy on this machine: X-Forwarded-For is read when the peer is loopback.
# TRUSTED_PROXIES (settings/security.py) names proxies in general (syntera/clientip.py).
WIDGET_TRUST_X_FORWARDED_FOR = env_bool("WIDGET_TRUST_X_FORWARDED_FOR", False)
# Anonymous visitors (apps/conversations/abuse.py), "<count>/<period>" ("0/m" = no limit):
# new widget connections and new conversations, per visitor address and per inbox.
WIDGET_CONNECT_RATE_PER_IP = env_str("WIDGET_CONNECT_RATE_PER_IP", "60/m")
WIDGET_CONNECT_RATE_PER_INBOX = env_str("WIDGET_CONNECT_RATE_PER_INBOX", "6000/m")
WIDGET_SESSION_RATE_PER_IP = env_str("WIDGET_SESSION_RATE_PER_IP", "30/h")
WIDGET_SESSION_RATE_PER_INBOX = env_str("WIDGET_SESSION_RATE_PER_INBOX", "3000/m")
# A conversation nobody wrote in (an opened widget) is removed after this many hours.
EMPTY_CONVERSATION_TTL_HOURS = env_int("EMPTY_CONVERSATION_TTL_HOURS", 24)
# Days of refusal counts kept for the inbox page and API.
ABUSE_COUNT_DAYS = env_int("ABUSE_COUNT_DAYS", 7)
# Where first messages go and which queue a hand-over waits in: the routing app decides,
# conversations acts (apps/conversations/policy.py). A dotted path to the policy's class.
CONVERSATIONS_ROUTING_POLICY = "apps.routing.policy.RoutingPolicy"
