"""Building the model: a plain-torch MiniLM encoder exported to ONNX (fp32), then quantised
to int8, as RECIPE says (see __init__.py)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

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
    fp32 = destination.with_name(FP32_FILE)
    _export_fp32(model_dir, fp32)
    quantise(fp32, destination)


def quantise(fp32: Path, destination: Path) -> None:
    """Write the int8 version of the fp32 MiniLM graph `fp32` to `destination`: its weight MatMuls
    as int8 MatMuls (activations quantised at run time), as RECIPE's "quantisation" says."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    spec = RECIPE["quantisation"]
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
