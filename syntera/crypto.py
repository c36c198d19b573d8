"""Encryption of secrets stored in the database (tenants' provider API keys).

Fernet (AES-128-CBC + HMAC-SHA256) with keys from `FIELD_ENCRYPTION_KEYS` (comma-separated
Fernet keys; the first encrypts, all decrypt, so keys can be rotated), or, when unset, one
key derived from SECRET_KEY. Rotating SECRET_KEY without setting FIELD_ENCRYPTION_KEYS makes
stored secrets unreadable: they must then be entered again.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    pass


@cache
def _fernet() -> MultiFernet:
    keys = [k.strip() for k in settings.FIELD_ENCRYPTION_KEYS if k.strip()]
    if not keys:
        digest = hashlib.sha256(b"syntera-field-encryption:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(k.encode()) for k in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("The stored secret cannot be decrypted with the configured keys.") from exc
