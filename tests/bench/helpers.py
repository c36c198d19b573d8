"""Shared helpers for the benchmarks: where the data is, loading BEIR files, the metrics,
and printing/recording results.

Nothing here touches the network; nothing is cached outside the test database and `var/`.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """`SYNTERA_DATA_DIR`, else `../shared/data` next to the repository."""
    configured = os.environ.get("SYNTERA_DATA_DIR")
    return Path(configured).resolve() if configured else (ROOT.parent / "shared" / "data").resolve()


def results_dir() -> Path:
    path = Path(os.environ.get("SYNTERA_VAR_DIR", ROOT / "var")).resolve() / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- BEIR files ----------------------------------------------------------------------------


@dataclass
class Beir:
    corpus: list[dict[str, str]]  # {"_id", "title", "text"}
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> query id -> doc id -> relevance


def load_beir(path: Path, splits: Iterable[str] = ("train", "test")) -> Beir:
    with gzip.open(path / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        corpus = [json.loads(line) for line in handle if line.strip()]
    with open(path / "queries.jsonl", encoding="utf-8") as handle:
        queries = {row["_id"]: row["text"] for row in (json.loads(line) for line in handle if line.strip())}
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for split in splits:
        table: dict[str, dict[str, int]] = {}
        with open(path / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                parts = line.rstrip("\n").split("\t")
                if number == 0 and parts[0] == "query-id":
                    continue
                if len(parts) != 3:
                    continue
                qid, did, score = parts
                table.setdefault(qid, {})[did] = int(score)
        qrels[split] = table
    return Beir(corpus=corpus, queries=queries, qrels=qrels)


# --- metrics (binary relevance) ------------------------------------------------------------


def ndcg_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG@k with binary gains (a document is relevant when its qrels score is > 0).

    DCG = sum over the first k ranks i (1-based) of rel_i / log2(i + 1); the ideal DCG puts
    min(k, #relevant) relevant documents first. Duplicates in `ranked` count once (first).
    """
    rel = {d for d, s in relevant.items() if s > 0}
    if not rel:
        return 0.0
    seen: set[str] = set()
    dcg = 0.0
    rank = 0
    for doc in ranked:
        if doc in seen:
            continue
        seen.add(doc)
        rank += 1
        if rank > k:
            break
        if doc in rel:
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, len(rel)) + 1))
    return dcg / ideal


def recall_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 100) -> float:
    rel = {d for d, s in relevant.items() if s > 0}
    if not rel:
        return 0.0
    top = list(dict.fromkeys(ranked))[:k]
    return len(rel.intersection(top)) / len(rel)


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- reporting -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/meminfo") as handle:
            info["mem_gib"] = round(int(handle.readline().split()[1]) / 1024 / 1024, 1)
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def record(name: str, payload: dict[str, Any]) -> Path:
    """Print and store a result as var/bench/<name>.json (the figures for docs/benchmarks.md)."""
    payload = {"recorded_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), **payload}
    path = results_dir() / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    print(f"\n[bench] results written to {path}")
    return path
