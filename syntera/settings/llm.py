from .env import env_str

# LLM and embedding providers. Without OPENAI_API_KEY everything runs offline.
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "")  # any OpenAI-compatible server
