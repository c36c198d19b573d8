from .env import env_float, env_int, env_str

# LLM and embedding providers. Without OPENAI_API_KEY everything runs offline.
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "")  # any OpenAI-compatible server

# OpenAI chat provider (apps/agents/providers/openai.py). The SDK retries 408/409/429/5xx,
# timeouts and connection errors with exponential backoff (0.5 s doubling, capped at 8 s),
# honouring retry-after(-ms); OPENAI_TIMEOUT bounds each attempt's connect and each read.
OPENAI_TIMEOUT = env_int("OPENAI_TIMEOUT", 30)  # seconds
# Total seconds per attempt (a whole streamed answer included): a server trickling tokens is cut off.
OPENAI_DEADLINE = env_int("OPENAI_DEADLINE", 120)
OPENAI_MAX_RETRIES = env_int("OPENAI_MAX_RETRIES", 2)
# Connections a process keeps open to one endpoint (one per answer streaming): at least the
# `llm` worker's threads, or its turns queue for a connection (httpx's default is 100).
OPENAI_MAX_CONNECTIONS = env_int("OPENAI_MAX_CONNECTIONS", 1000)
OPENAI_CHAT_MODEL = env_str("OPENAI_CHAT_MODEL", "gpt-4o-mini")

# AI turns at once per workspace (on every worker together): a workspace flooding the AI waits
# its turn instead of taking every thread; a turn over the cap goes back to its queue for
# AI_CONCURRENCY_RETRY_SECONDS (plus jitter). 0 = no cap.
AI_TENANT_CONCURRENCY = env_int("AI_TENANT_CONCURRENCY", 20)
AI_CONCURRENCY_RETRY_SECONDS = env_float("AI_CONCURRENCY_RETRY_SECONDS", 1.0)
# The circuit breaker per workspace and provider (apps/agents/breaker.py): after
# AI_BREAKER_FAILURES failed calls in a row (timeouts, 429, 5xx, outages), no call for
# AI_BREAKER_OPEN_SECONDS: visitors are told at once that the AI cannot answer and offered a
# person; then one trial call decides whether it closes again.
AI_BREAKER_FAILURES = env_int("AI_BREAKER_FAILURES", 5)
AI_BREAKER_OPEN_SECONDS = env_int("AI_BREAKER_OPEN_SECONDS", 30)
# A visitor message still waiting for the AI's reply after AI_STALL_SECONDS has its turn sent
# again, once (its worker died mid-turn: the broker hands a dead worker's task out again only
# after CELERY_VISIBILITY_TIMEOUT). Swept every AI_STALL_SWEEP_INTERVAL seconds; messages
# older than AI_STALL_MAX_AGE are left to the people watching the inbox.
AI_STALL_SECONDS = env_int("AI_STALL_SECONDS", 120)
AI_STALL_SWEEP_INTERVAL = env_int("AI_STALL_SWEEP_INTERVAL", 30)
AI_STALL_MAX_AGE = env_int("AI_STALL_MAX_AGE", 3600)
