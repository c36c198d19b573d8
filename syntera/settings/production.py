"""Production defaults: DEBUG off, secure cookies, HSTS, TLS redirect. Still env-driven.

Importing this module first imports `syntera.settings` (the package), so the secure
defaults are applied here, on top, each still overridable by its environment variable.
The keys must come from the environment (keys.py generates none for production).
"""

import base64
import binascii

from . import *  # noqa: F403
from .env import env_bool, env_int, env_list, env_str

for _name in ("SECRET_KEY", "JWT_SIGNING_KEY", "FIELD_ENCRYPTION_KEYS"):
    if not env_str(_name).strip(", "):
        raise RuntimeError(f"{_name} must be set in production")
if env_str("JWT_SIGNING_KEY") == env_str("SECRET_KEY"):
    raise RuntimeError("JWT_SIGNING_KEY must differ from SECRET_KEY")
for _key in env_list("FIELD_ENCRYPTION_KEYS"):
    try:
        _valid = len(base64.urlsafe_b64decode(_key.encode())) == 32
    except (binascii.Error, ValueError):
        _valid = False
    if not _valid:
        raise RuntimeError("FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 bytes, URL-safe base64)")

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
