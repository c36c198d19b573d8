"""Replay the offline responder and its gate on the questions a run of test_agent_eval.py
prepared (`agent_eval_prepared.pkl`: query, the retrieved passages, unknown words), without
the database: how tuning changes to the responder's scoring are measured before a full run.

    python -m tests.bench.replay [path/to/agent_eval_prepared.pkl]

Prints, for each support threshold of the grid, gold citation and abstention on doc2dial's
tune half, held-out half and all, and on support-dev (a dev set: reported, never tuned on);
then the setting the benchmark's rule picks on the tune half.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

ABSTENTION_TARGET = 0.95
SUPPORT_GRID = tuple(round(0.56 + 0.02 * i, 2) for i in range(15))


def _rates(rows: list[dict[str, Any]], cited: dict[str, tuple[str, ...]]) -> tuple[float, float]:
    answerable = [r for r in rows if r["golds"]]
    other = [r for r in rows if not r["golds"]]
    gold = sum(1 for r in answerable if any(g in cited[r["id"]] for g in r["golds"]))
    declined = sum(1 for r in other if not cited[r["id"]])
    return (gold / len(answerable) if answerable else float("nan"), declined / len(other) if other else float("nan"))


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
        "tune": [r for r in rows if r["split"] == "tune"],
        "test": [r for r in rows if r["split"] == "test"],
        "all": [r for r in rows if r["set"] == "doc2dial"],
        "support-dev": [r for r in rows if r["set"] == "support-dev"],
    }
    print("support | " + " | ".join(f"{g} gold/abst" for g in groups))
    picked = None
    for support in SUPPORT_GRID:
        responder = OfflineResponder(support_threshold=support)
        cited = {}
        for row in rows:
            analysis = analyses[row["id"]]
            chosen = responder.choose(analysis) if analysis is not None else []
            cited[row["id"]] = tuple(dict.fromkeys(row["doc_of"][k.source_id] for c in chosen for k in c.chunks))
        figures = {g: _rates(members, cited) for g, members in groups.items()}
        print(f"{support:.2f} | " + " | ".join(f"{a:.3f}/{b:.3f}" for a, b in figures.values()))
        gold, abstention = figures["tune"]
        if abstention >= ABSTENTION_TARGET and (picked is None or gold > picked[1]):
            picked = (support, gold, figures)
    if picked:
        print(
            f"picked on tune: support {picked[0]:.2f} → "
            + ", ".join(f"{g} {a:.3f}/{b:.3f}" for g, (a, b) in picked[2].items())
        )


if __name__ == "__main__":
    default = Path(os.environ.get("SYNTERA_VAR_DIR", Path(__file__).resolve().parents[2] / "var")) / "bench"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default / "agent_eval_prepared.pkl")
