from .env import env_int, env_list

# Every outbound HTTP request goes through syntera/outbound/ (docs/adr/0012-outbound-http.md).
# Addresses that are not globally routable (loopback, private, link-local, CGNAT, and IPv6
# forms carrying them) are refused unless admitted here: comma-separated CIDR networks and
# host names, e.g. "10.20.0.0/16,wiki.corp.example,llm.internal". It admits intranet pages
# for knowledge sources and a self-hosted model server for tenants' LLM base URLs.
# KNOWLEDGE_URL_ALLOWLIST is read as an alias (both lists apply).
OUTBOUND_ALLOWLIST = env_list("OUTBOUND_ALLOWLIST", "")
# Defaults of the guarded client: seconds per connect / read / write, and in total per
# request (headers and body included; a server trickling bytes is cut off there).
OUTBOUND_TIMEOUT = env_int("OUTBOUND_TIMEOUT", 10)
OUTBOUND_DEADLINE = env_int("OUTBOUND_DEADLINE", 30)
