"""Signing and encryption keys: never a published default, generated once under var/ when
unset, the same for every process, separate from one another, required in production."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

ROOT = Path(__file__).resolve().parent.parent
KEY_VARS = ("SECRET_KEY", "JWT_SIGNING_KEY", "FIELD_ENCRYPTION_KEYS")
# Values that earlier versions shipped as defaults (settings, docker-compose.yml): anyone can read them.
PUBLISHED = (
    "dev-insecure-key-change-me-dev-insecure-key-change-me-0123456789",
    "compose-only-insecure-secret-key-change-me-0123456789abcdef",
)
SHOW_KEYS = (
    "import json; from django.conf import settings; "
    "print(json.dumps({'SECRET_KEY': settings.SECRET_KEY, "
    "'JWT_SIGNING_KEY': settings.SIMPLE_JWT['SIGNING_KEY'], "
    "'FIELD_ENCRYPTION_KEYS': settings.FIELD_ENCRYPTION_KEYS}))"
)


def _env(var_dir: Path, settings_module: str = "syntera.settings", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env.update(DJANGO_SETTINGS_MODULE=settings_module, SYNTERA_VAR_DIR=str(var_dir), **extra)
    return env


def _load(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SHOW_KEYS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def _keys(var_dir: Path, **extra: str) -> dict[str, Any]:
    result = _load(_env(var_dir, **extra))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_unset_keys_are_generated_once_kept_private_and_reused(tmp_path: Path) -> None:
    first = _keys(tmp_path)
    secret, jwt_key, field_keys = first["SECRET_KEY"], first["JWT_SIGNING_KEY"], first["FIELD_ENCRYPTION_KEYS"]
    assert secret not in PUBLISHED and jwt_key not in PUBLISHED
    assert len(secret) >= 50 and len(jwt_key) >= 50
    # three separate keys: knowing one (or SECRET_KEY) tells nothing about the others
    assert len(field_keys) == 1 and len({secret, jwt_key, field_keys[0]}) == 3
    from cryptography.fernet import Fernet

    Fernet(field_keys[0].encode())  # a valid Fernet key
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _keys(tmp_path) == first  # the next start (web, worker, beat, a command) reads the same keys
    assert _keys(tmp_path / "elsewhere") != first  # another var/ is another installation


def test_processes_starting_at_once_agree_on_the_keys(tmp_path: Path) -> None:
    """web, worker and beat start together on a fresh var/: whoever writes first wins, the
    others read what it wrote (never a half-written file, never their own key)."""
    env = _env(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SHOW_KEYS], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(6)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        outputs.append(json.loads(out))
    assert all(output == outputs[0] for output in outputs)
    assert json.loads((tmp_path / "secrets.json").read_text())["SECRET_KEY"] == outputs[0]["SECRET_KEY"]
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]  # no temporary file left


def test_explicit_keys_win_and_the_file_fills_only_the_missing_ones(tmp_path: Path) -> None:
    generated = _keys(tmp_path)
    mine = _keys(tmp_path, SECRET_KEY="x" * 60)
    assert mine["SECRET_KEY"] == "x" * 60
    assert mine["JWT_SIGNING_KEY"] == generated["JWT_SIGNING_KEY"]  # not derived from SECRET_KEY
    assert mine["FIELD_ENCRYPTION_KEYS"] == generated["FIELD_ENCRYPTION_KEYS"]


def test_a_published_default_is_refused(tmp_path: Path) -> None:
    result = _load(_env(tmp_path, SECRET_KEY=PUBLISHED[1]))
    assert result.returncode != 0 and "published" in result.stderr


def test_an_unreadable_or_damaged_keys_file_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "secrets.json").write_text('{"SECRET_KEY": ')
    result = _load(_env(tmp_path))
    assert result.returncode != 0 and "secrets.json" in result.stderr
    assert (tmp_path / "secrets.json").read_text() == '{"SECRET_KEY": '  # the operator decides, not us


def test_a_keys_file_readable_by_others_is_made_private(tmp_path: Path) -> None:
    first = _keys(tmp_path)
    path = tmp_path / "secrets.json"
    path.chmod(0o644)
    assert _keys(tmp_path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("missing", KEY_VARS)
def test_production_refuses_to_start_without_each_key(tmp_path: Path, missing: str) -> None:
    keys = {
        "SECRET_KEY": "s" * 60,
        "JWT_SIGNING_KEY": "j" * 60,
        "FIELD_ENCRYPTION_KEYS": "q6kTiaO-7QQ2Z8L6mFWmwYZ7TfOR0Ts7D3BQ2QyTcx0=",
    }
    del keys[missing]
    result = _load(_env(tmp_path, "syntera.settings.production", **keys))
    assert result.returncode != 0 and f"{missing} must be set in production" in result.stderr
    assert not (tmp_path / "secrets.json").exists()  # production never writes keys to disk


def test_production_refuses_a_jwt_key_equal_to_secret_key_and_bad_fernet_keys(tmp_path: Path) -> None:
    keys = {
        "SECRET_KEY": "s" * 60,
        "JWT_SIGNING_KEY": "s" * 60,
        "FIELD_ENCRYPTION_KEYS": "q6kTiaO-7QQ2Z8L6mFWmwYZ7TfOR0Ts7D3BQ2QyTcx0=",
    }
    result = _load(_env(tmp_path, "syntera.settings.production", **keys))
    assert result.returncode != 0 and "JWT_SIGNING_KEY must differ from SECRET_KEY" in result.stderr
    keys["JWT_SIGNING_KEY"] = "j" * 60
    keys["FIELD_ENCRYPTION_KEYS"] = "not-a-fernet-key"
    result = _load(_env(tmp_path, "syntera.settings.production", **keys))
    assert result.returncode != 0 and "FIELD_ENCRYPTION_KEYS" in result.stderr


def test_a_jwt_signed_with_a_published_default_is_refused(alpha: Any, api_for: Any, settings: Any) -> None:
    from apps.accounts.authentication import jwt_pair_for
    from apps.accounts.models import Membership

    membership = Membership.objects.get(user__email=alpha.owner_email, tenant_id=alpha.tenant_id)
    genuine = jwt_pair_for(user=membership.user, membership=membership)["access"]
    assert api_for(alpha.host, genuine).get("/api/v1/me/").json()["email"] == alpha.owner_email
    claims = jwt.decode(genuine, settings.SIMPLE_JWT["SIGNING_KEY"], algorithms=["HS256"])
    for published in PUBLISHED:
        # The very same claims, signed with a key anyone could read in the source.
        forged = jwt.encode({**claims, "jti": f"forged{time.monotonic_ns()}"}, published, algorithm="HS256")
        response = api_for(alpha.host, forged).get("/api/v1/me/")
        assert response.status_code == 401, response.content
        assert response.json()["error"]["code"]
    assert settings.SIMPLE_JWT["SIGNING_KEY"] not in PUBLISHED
    assert settings.SIMPLE_JWT["SIGNING_KEY"] != settings.SECRET_KEY
