"""Signing and encryption keys: SECRET_KEY, JWT_SIGNING_KEY and FIELD_ENCRYPTION_KEYS.

Three separate keys, each from its environment variable, so that none can be derived from
another. Outside the production settings, a key that is not set is read from
`$SYNTERA_VAR_DIR/secrets.json` (default `var/secrets.json`), which the first process to
start writes with random keys (mode 0600). Every later start, and every process sharing that
directory (web, worker, beat, commands), reads the same keys, so `make run` and
docker-compose need no set-up and no installation shares a published key.

Processes starting at once on a fresh directory race to write the file: each writes its own
complete candidate to a private temporary file and hard-links it into place, which succeeds
for exactly one of them; the others read the winner's file. A damaged file is never
replaced (stored secrets would become unreadable); the error names it.

`syntera.settings.production` never generates keys: it demands all three from the
environment. See docs/adr/0014-email-verification-and-secrets.md.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import stat
from pathlib import Path

from .env import env_list, env_str

# Values earlier versions shipped as defaults (settings, docker-compose.yml): public knowledge,
# so a deployment that still sets one of them is refused rather than trusted.
PUBLISHED_KEYS = frozenset(
    {
        "dev-insecure-key-change-me-dev-insecure-key-change-me-0123456789",
        "compose-only-insecure-secret-key-change-me-0123456789abcdef",
    }
)
KEYS_FILE_NAME = "secrets.json"
_FILE_FIELDS = ("SECRET_KEY", "JWT_SIGNING_KEY", "FIELD_ENCRYPTION_KEY")


def local_keys_path() -> Path:
    return Path(os.environ.get("SYNTERA_VAR_DIR") or Path(__file__).resolve().parents[2] / "var") / KEYS_FILE_NAME


def _new_keys() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(50),
        # A Fernet key: 32 random bytes, URL-safe base64.
        "FIELD_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }


def _read(path: Path) -> dict[str, str]:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"{path} cannot be read ({exc}). It holds this installation's keys and is never replaced "
            "automatically: restore it, or delete it to generate new keys (sessions and tokens end, and "
            "secrets stored encrypted must be entered again)."
        ) from exc
    if not isinstance(values, dict) or not all(isinstance(values.get(k), str) and values[k] for k in _FILE_FIELDS):
        raise RuntimeError(f"{path} lacks one of {', '.join(_FILE_FIELDS)}; restore it or delete it.")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)  # readable by the owner only, even if someone loosened it
    return {k: values[k] for k in _FILE_FIELDS}


def load_or_create_local_keys(path: Path) -> dict[str, str]:
    """The keys in `path`, written first with random values if the file does not exist."""
    if path.exists():
        return _read(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(_new_keys(), handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            # Atomic and exclusive: exactly one process's file becomes `path`.
            with contextlib.suppress(FileExistsError):
                os.link(candidate, path)
        finally:
            candidate.unlink(missing_ok=True)
    except OSError as exc:
        raise RuntimeError(
            f"SECRET_KEY, JWT_SIGNING_KEY or FIELD_ENCRYPTION_KEYS is not set and {path} cannot be written "
            f"({exc}). Set the three variables, or make SYNTERA_VAR_DIR writable."
        ) from exc
    return _read(path)


def _refuse_published(name: str, value: str) -> str:
    if value in PUBLISHED_KEYS:
        raise RuntimeError(
            f"{name} is set to a value published with Syntera's source code; unset it (a random key is "
            "generated under var/) or set a secret of your own."
        )
    return value


_PRODUCTION = os.environ.get("DJANGO_SETTINGS_MODULE") == "syntera.settings.production"
_secret_key = _refuse_published("SECRET_KEY", env_str("SECRET_KEY"))
_jwt_key = _refuse_published("JWT_SIGNING_KEY", env_str("JWT_SIGNING_KEY"))
_field_keys = env_list("FIELD_ENCRYPTION_KEYS", "")

# The file used for the keys that were not set (None when every key came from the environment).
LOCAL_KEYS_FILE: str | None = None
_local: dict[str, str] = {}
if not _PRODUCTION and not (_secret_key and _jwt_key and _field_keys):
    _path = local_keys_path()
    _local = load_or_create_local_keys(_path)
    LOCAL_KEYS_FILE = str(_path)

# Sessions, CSRF, password-reset links, Django's signing.
SECRET_KEY = _secret_key or _local.get("SECRET_KEY", "")
# JWTs (SIMPLE_JWT["SIGNING_KEY"]); never derived from SECRET_KEY.
JWT_SIGNING_KEY = _jwt_key or _local.get("JWT_SIGNING_KEY", "")
# Fernet keys for secrets stored in the database (syntera/crypto.py): the first encrypts, all
# decrypt, so a key can be rotated (`manage.py rotate_encryption_key`).
FIELD_ENCRYPTION_KEYS = _field_keys or ([_local["FIELD_ENCRYPTION_KEY"]] if _local else [])
