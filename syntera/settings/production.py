"""Production defaults: secure cookies, HSTS, TLS redirect, DEBUG off. Still env-driven."""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "true")
os.environ.setdefault("CSRF_COOKIE_SECURE", "true")
os.environ.setdefault("SECURE_SSL_REDIRECT", "true")
os.environ.setdefault("SECURE_HSTS_SECONDS", "31536000")
os.environ.setdefault("SECURE_HSTS_INCLUDE_SUBDOMAINS", "true")
os.environ.setdefault("SECURE_HSTS_PRELOAD", "true")
os.environ.setdefault("BEHIND_TLS_PROXY", "true")
os.environ.setdefault("SITE_SCHEME", "https")

from . import *  # noqa: F403
from .env import env_str

if not env_str("SECRET_KEY"):
    raise RuntimeError("SECRET_KEY must be set in production")
