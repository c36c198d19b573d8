"""Where the built model lives and how it gets there once per machine: the cache directory,
the cache key, and the locked, atomic build (see __init__.py)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from .build import MODEL_FILE, RECIPE, build_model

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]
LOCK_TIMEOUT = 600.0  # seconds to wait for another process's build before building privately


def _usable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def cache_root(model_dir: Path | None = None) -> Path:
    """The directory that holds built models (see the module docstring for the order)."""
    configured = os.environ.get("KNOWLEDGE_ONNX_CACHE_DIR")
    if configured:
        return Path(configured).resolve()
    candidates = [Path(os.environ.get("SYNTERA_VAR_DIR", ROOT / "var")).resolve() / "models"]
    if model_dir is not None:
        candidates.append(model_dir.resolve().parent / "onnx-cache")
    candidates.append(Path(tempfile.gettempdir()) / "syntera-models")
    for candidate in candidates:
        if _usable_dir(candidate):
            return candidate
    raise OSError(f"No writable directory for the ONNX model among {[str(c) for c in candidates]}")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


@cache
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


BUILD_TOOLS = ("torch", "onnx", "onnxruntime")  # what the build from the weights runs on
DERIVE_TOOLS = ("onnx", "onnxruntime")  # what deriving the packaged model's fast form runs on


def _key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cache_key(model_dir: Path) -> str:
    """Hash of the weights, the tokenizer/config, the recipe and the tool versions."""
    parts: dict[str, Any] = {"recipe": RECIPE}
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        path = model_dir / name
        stat = path.stat()
        parts[name] = _file_digest(str(path), stat.st_size, stat.st_mtime_ns)
    parts["versions"] = {p: _version(p) for p in BUILD_TOOLS}
    return _key(parts)


def model_path(model_dir: Path, root: Path | None = None) -> Path:
    """Where the built model for these weights is (or will be)."""
    root = root if root is not None else cache_root(model_dir)
    return root / f"minilm-onnx-{cache_key(model_dir)}" / MODEL_FILE


def derived_path(source_sha256: str, root: Path | None = None) -> Path:
    """Where the fast form of the packaged model with this checksum is (or will be)."""
    versions = {p: _version(p) for p in DERIVE_TOOLS}
    key = _key({"recipe": RECIPE["quantisation"], "source": source_sha256, "versions": versions})
    root = root if root is not None else cache_root()
    return root / f"minilm-onnx-packaged-{key}" / MODEL_FILE


@contextlib.contextmanager
def _exclusive(lock_path: Path, timeout: float) -> Iterator[bool]:
    """Hold an exclusive flock on `lock_path`; yields False if it could not be had in time."""
    with open(lock_path, "a+b") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.2)
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_model(model_dir: Path, root: Path | None = None, *, builder: Any = None) -> Path:
    """The path of the built model, building it first if this machine has none yet.

    `builder(model_dir, destination_file)` defaults to `build_model` (tests pass a stand-in).
    """
    build = builder or build_model
    meta = {"recipe": RECIPE, "source": str(model_dir), "versions": {p: _version(p) for p in BUILD_TOOLS}}
    return _ensure(model_path(model_dir, root), lambda destination: build(model_dir, destination), meta)


def ensure_derived(source: Path, source_sha256: str, root: Path | None = None) -> Path:
    """The path of the packaged model's fast form, deriving it first if this machine has none
    yet (`source` is the packaged file, already verified to have `source_sha256`)."""
    from .packaged import derive_model

    meta = {
        "recipe": RECIPE["quantisation"],
        "source": str(source),
        "source_sha256": source_sha256,
        "versions": {p: _version(p) for p in DERIVE_TOOLS},
    }
    return _ensure(derived_path(source_sha256, root), lambda destination: derive_model(source, destination), meta)


def _ensure(target: Path, build: Callable[[Path], None], meta: dict[str, Any]) -> Path:
    """`target`, made first by `build(destination_file)` if it does not exist: once per machine,
    under an exclusive lock, in a temporary directory renamed into place when complete."""
    if target.is_file():
        return target
    final_dir = target.parent
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(final_dir.parent / f"{final_dir.name}.lock", LOCK_TIMEOUT) as locked:
        if target.is_file():  # built by another process while we waited
            return target
        if not locked:
            logger.warning("Timed out waiting for another process to build %s; building it here too", target)
        work = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
        try:
            started = time.perf_counter()
            build(work / MODEL_FILE)
            seconds = time.perf_counter() - started
            meta = {**meta, "build_seconds": round(seconds, 2), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (work / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
            work.chmod(0o755)  # mkdtemp makes it private; the model is not a secret
            try:
                os.rename(work, final_dir)  # atomic: the directory appears complete or not at all
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not target.is_file():
                    raise
            else:
                logger.info("Built the ONNX MiniLM model in %.1f s: %s", seconds, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target
