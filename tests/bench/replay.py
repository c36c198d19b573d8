"""Replay the offline responder and its gate on the questions a run of test_agent_eval.py
prepared (`agent_eval_prepared.pkl`: query, the retrieved passages, unknown words), without
the database: how tuning changes to the responder's scoring are measured before a full run.

    python -m tests.bench.replay [path/to/agent_eval_prepared.pkl]

Prints, for each support threshold of the grid, gold citation and abstention on the tune
half, the held-out half and all of doc2dial and of support-dev; then the threshold the
benchmark's rule (`pick_support`) chooses on the two tune halves together.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

ABSTENTION_TARGET = 0.95
SUPPORT_GRID = tuple(round(0.50 + 0.02 * i, 2) for i in range(18))


def _rates(rows: list[dict[str, Any]], cited: dict[str, tuple[str, ...]]) -> tuple[float, float]:
    answerable = [r for r in rows if r["golds"]]
    other = [r for r in rows if not r["golds"]]
    gold = sum(1 for r in answerable if any(g in cited[r["id"]] for g in r["golds"]))
    declined = sum(1 for r in other if not cited[r["id"]])
    return (gold / len(answerable) if answerable else float("nan"), declined / len(other) if other else float("nan"))


def pick_support(
    figures: dict[float, dict[str, tuple[float, float]]], sizes: dict[str, tuple[int, int]]
) -> float | None:
    """The support threshold chosen on the tune halves of both sets together: doc2dial's tune
    half must keep ABSTENTION_TARGET; among those, the most questions of both tune halves
    handled right (answerable ones answered from a gold page, unanswerable ones declined),
    each question counting once; among equals the lowest threshold."""
    tune = ("doc2dial tune", "support-dev tune")

    def right(support: float) -> float:
        return sum(g * sizes[k][0] + a * sizes[k][1] for k in tune for g, a in [figures[support][k]])

    feasible = [s for s, f in figures.items() if f["doc2dial tune"][1] >= ABSTENTION_TARGET]
    return max(feasible, key=lambda s: (round(right(s), 6), -s)) if feasible else None


def _split(row: dict[str, Any]) -> str:
    from apps.agents.evaluation import split_of

    # Older files mark all of support-dev "dev": its split comes from the item id's hash.
    return split_of(row["id"]) if row["split"] == "dev" else row["split"]


def main(path: Path, min_similarity: float = 0.3) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syntera.settings")
    django.setup()
    from apps.agents.providers.offline import OfflineResponder
    from apps.agents.providers.offline.scoring import analyse, local_embedder

    with open(path, "rb") as handle:
        rows = pickle.load(handle)
    embed = local_embedder()
    analyses = {}
    for row in rows:
        context = row["context"]
        best = max((c.similarity or 0.0 for c in context), default=0.0)
        if row["smalltalk"] or not context or best < min_similarity:
            analyses[row["id"]] = None
        else:
            analyses[row["id"]] = analyse(row["query"], context, embed=embed, unknown=row["unknown"])
    groups = {
        f"{name} {split}": [r for r in rows if r["set"] == name and split in ("all", _split(r))]
        for name in ("doc2dial", "support-dev")
        for split in ("tune", "test", "all")
    }
    print("support | " + " | ".join(f"{g} gold/abst" for g in groups))
    every = {}
    for support in SUPPORT_GRID:
        responder = OfflineResponder(support_threshold=support)
        cited = {}
        for row in rows:
            analysis = analyses[row["id"]]
            chosen = responder.choose(analysis) if analysis is not None else []
            cited[row["id"]] = tuple(dict.fromkeys(row["doc_of"][k.source_id] for c in chosen for k in c.chunks))
        figures = {g: _rates(members, cited) for g, members in groups.items()}
        print(f"{support:.2f} | " + " | ".join(f"{a:.3f}/{b:.3f}" for a, b in figures.values()))
        every[support] = figures
    sizes = {g: (sum(1 for r in m if r["golds"]), sum(1 for r in m if not r["golds"])) for g, m in groups.items()}
    picked = pick_support(every, sizes)
    if picked is not None:
        print(
            f"picked on the tune halves: support {picked:.2f} → "
            + ", ".join(f"{g} {a:.3f}/{b:.3f}" for g, (a, b) in every[picked].items())
        )


if __name__ == "__main__":
    default = Path(os.environ.get("SYNTERA_VAR_DIR", Path(__file__).resolve().parents[2] / "var")) / "bench"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default / "agent_eval_prepared.pkl")
