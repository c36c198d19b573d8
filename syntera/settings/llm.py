from .env import env_int, env_str

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
OPENAI_CHAT_MODEL = env_str("OPENAI_CHAT_MODEL", "gpt-4o-mini")
