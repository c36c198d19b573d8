"""Production defaults: DEBUG off, secure cookies, HSTS, TLS redirect. Still env-driven.

Importing this module first imports `syntera.settings` (the package), so the secure
defaults are applied here, on top, each still overridable by its environment variable.
"""

from . import *  # noqa: F403
from .env import env_bool, env_int, env_str

if not env_str("SECRET_KEY"):
    raise RuntimeError("SECRET_KEY must be set in production")

DEBUG = env_bool("DEBUG", False)
WHITENOISE_AUTOREFRESH = False
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", True) else None
SITE_SCHEME = env_str("SITE_SCHEME", "https")
SITE_PORT = env_int("SITE_PORT", 443)
