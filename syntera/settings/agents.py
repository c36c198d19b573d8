from .env import env_bool, env_int

# FIELD_ENCRYPTION_KEYS (tenants' LLM API keys stored encrypted) is in keys.py.

# AI quotas per tenant and day, when the tenant's plan sets none (0 = unlimited).
AI_DAILY_REQUESTS = env_int("AI_DAILY_REQUESTS", 5000)
AI_DAILY_TOKENS = env_int("AI_DAILY_TOKENS", 2_000_000)
# Each visitor's share of it: AI answers per conversation and per visitor address and day.
AI_DAILY_REQUESTS_PER_CONVERSATION = env_int("AI_DAILY_REQUESTS_PER_CONVERSATION", 100)
AI_DAILY_REQUESTS_PER_IP = env_int("AI_DAILY_REQUESTS_PER_IP", 300)

# Prompt budgets (tokens): reference passages, and recent turns (older ones go to the summary).
AGENT_CONTEXT_BUDGET = env_int("AGENT_CONTEXT_BUDGET", 2500)
AGENT_HISTORY_BUDGET = env_int("AGENT_HISTORY_BUDGET", 1500)
# Largest visitor message the agent reads (characters); longer ones are cut.
AGENT_MAX_INPUT_CHARS = env_int("AGENT_MAX_INPUT_CHARS", 4000)
# Tool-calling rounds per turn before the agent must answer.
AGENT_MAX_TOOL_ROUNDS = env_int("AGENT_MAX_TOOL_ROUNDS", 3)
# Misspelt question words corrected against the knowledge bases' own words before retrieval.
AGENT_SPELLING_CORRECTION = env_bool("AGENT_SPELLING_CORRECTION", True)
