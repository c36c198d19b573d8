from .env import env_bool, env_int, env_list, env_str

# Origins besides the page's own that may post forms. None by default: every workspace lives
# under the same parent domain, and a wildcard here (`https://*.example.com`) would let one
# workspace's pages post to another's forms. Name a host only for a proxy that rewrites Host.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Reverse proxies whose X-Forwarded-For is believed (CIDRs, comma-separated): the client's
# address is the rightmost entry that is not one of them (syntera/clientip.py). Empty: none.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12)
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# Content-Security-Policy on every response (syntera/csp.py). Report-only sends it as
# Content-Security-Policy-Report-Only: violations are reported, nothing is blocked.
CSP_REPORT_ONLY = env_bool("CSP_REPORT_ONLY", False)
# Where browsers report violations: "/csp-report/" is the built-in receiver (it logs them),
# or any collector's URL; empty sends no reports.
CSP_REPORT_URI = env_str("CSP_REPORT_URI", "")
CSRF_FAILURE_VIEW = "syntera.errors.csrf_failure"

# Rate limits (django-ratelimit). Format "<count>/<period>", period in s/m/h/d.
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
RATELIMIT_USE_CACHE = "default"
RATELIMIT_LOGIN = env_str("RATELIMIT_LOGIN", "10/m")
# Password attempts per account, wherever a password is checked (docs/adr/0013-scopes-bound-grants.md).
RATELIMIT_LOGIN_ACCOUNT = env_str("RATELIMIT_LOGIN_ACCOUNT", "10/15m")
RATELIMIT_PASSWORD_RESET = env_str("RATELIMIT_PASSWORD_RESET", "10/m")
RATELIMIT_PASSWORD_RESET_ACCOUNT = env_str("RATELIMIT_PASSWORD_RESET_ACCOUNT", "5/h")
RATELIMIT_SIGNUP = env_str("RATELIMIT_SIGNUP", "5/m")
RATELIMIT_PUBLIC = env_str("RATELIMIT_PUBLIC", "60/m")
RATELIMIT_API_KEY = env_str("RATELIMIT_API_KEY", "600/m")
RATELIMIT_API_AUTH_FAILURES = env_str("RATELIMIT_API_AUTH_FAILURES", "20/m")

# /metrics: a bearer token, or a list of client networks allowed without one.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")
