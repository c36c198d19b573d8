"""Answer-quality evaluation of an agent on question sets, independent of Django models.

Used by the agent benchmark (tests/bench/test_agent_eval.py) and by the `eval_agent`
management command: both supply an `answer_fn(question, history)` that runs their own path
(the bench: search → offline responder; the command: the real runtime) and returns an
`Answer`, or a tuple (text, decision, cited, latency_seconds) with the same meaning.

Question sets (see /work/shared/data/doc2dial-val/README.md for the doc2dial files):
- `load_doc2dial(path)`: `questions_first_turn.jsonl` or `questions_all_turns.jsonl.gz`
  (gold document id and gold answer span; `history` as (role, text) pairs, role "user" or
  "assistant");
- `load_unanswerable(path)`: our own JSONL of questions the documents do not answer,
  `{"id", "question", "kind": "off_topic" | "near_miss"}`.

Scoring. An answer *answers* when it cites at least one source (an answer without a citation
is an abstention, whatever its text says: that is how the runtime treats it). A cited source
is compared with the gold document by the id/title the answer_fn reports, so the answer_fn
maps its citations to the same id space as the question set (doc2dial `doc_id`).
`token_f1` is DialDoc'21's: lower case, punctuation and articles (a, an, the) removed, bag of
words F1; citation markers `[n]` are removed from the answer first.

`evaluate(answer_fn, items)` returns a report dict:
- `n`, `answerable`, `unanswerable`: item counts;
- `gold_citation_rate`: share of answerable items whose answer cites the gold document
  (the headline metric; abstaining counts as a miss);
- `answer_rate`: share of answerable items answered (with any citation);
- `citation_precision`: of the answered answerable items, the share citing the gold
  document;
- `token_f1`: mean token-F1 against the gold span over answerable items (0 for an
  abstention, DialDoc style); `token_f1_answered`: the same over answered items only;
- `abstention_rate`: share of unanswerable items not answered (no citation);
  `abstention_by_kind`: the same per `kind` (off_topic, near_miss);
- `decisions`: count of each decision string the answer_fn reported ("answer",
  "no_answer", "smalltalk", "abstain", ...);
- `latency_ms`: {"p50", "p95", "mean", "max"} over all items;
- `by_kind`: the answerable metrics per item kind (first_turn, follow_up).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

History = list[tuple[str, str]]  # (role "user"|"assistant", text), oldest first


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    history: History = field(default_factory=list)
    gold_doc: str | None = None  # None: the knowledge does not answer it
    gold_answer: str = ""
    dial_id: str = ""
    turn_id: int = 1
    kind: str = "first_turn"  # first_turn | follow_up | visitor | off_topic | near_miss
    domain: str = ""
    also_gold: tuple[str, ...] = ()  # further pages that hold the answer as well

    @property
    def answerable(self) -> bool:
        return self.gold_doc is not None

    @property
    def golds(self) -> tuple[str, ...]:
        """Every page whose citation counts as the gold one."""
        return () if self.gold_doc is None else (self.gold_doc, *self.also_gold)

    def cites_gold(self, cited: Sequence[str]) -> bool:
        return any(g in cited for g in self.golds)


@dataclass(frozen=True)
class Answer:
    text: str
    decision: str  # what the system decided: "answer", "no_answer", "smalltalk", "abstain", ...
    cited: tuple[str, ...]  # ids (or titles) of the cited sources, in the question set's id space
    latency: float  # seconds


AnswerFn = Callable[[str, History], Any]  # returns an Answer or (text, decision, cited, latency)


# --- loading ------------------------------------------------------------------------------


def _open(path: Path) -> Any:
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _rows(path: Path) -> Iterable[dict[str, Any]]:
    with _open(Path(path)) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_doc2dial(path: Path | str) -> list[QAItem]:
    """doc2dial questions (first-turn or all-turns file) with gold document and span."""
    items = []
    for row in _rows(Path(path)):
        history = [("assistant" if h["role"] == "agent" else "user", h["utterance"]) for h in row.get("history") or []]
        turn = int(row.get("turn_id") or 1)
        items.append(
            QAItem(
                id=str(row["id"]),
                question=row["question"],
                history=history,
                gold_doc=row["doc_id"],
                gold_answer=row.get("answer") or "",
                dial_id=row.get("dial_id") or "",
                turn_id=turn,
                kind="follow_up" if history else "first_turn",
                domain=row.get("domain") or "",
            )
        )
    return items


def load_unanswerable(path: Path | str) -> list[QAItem]:
    """Our questions that the knowledge does not answer: {"id", "question", "kind"}."""
    items = []
    for row in _rows(Path(path)):
        kind = row.get("kind")
        if kind not in ("off_topic", "near_miss"):
            raise ValueError(f"{row.get('id')}: kind must be off_topic or near_miss, not {kind!r}")
        items.append(
            QAItem(id=str(row["id"]), question=row["question"], gold_doc=None, dial_id=str(row["id"]), kind=kind)
        )
    return items


def load_support_dev(directory: Path | str) -> list[QAItem]:
    """support-dev (visitor-style questions over the doc2dial pages): `answerable.jsonl`
    `{"id","question","gold_doc_ids","answer_evidence"}` and `unanswerable.jsonl`
    `{"id","question","kind": "near-domain" | "off-topic"}`. Every answerable item counts any
    of its gold pages; the kinds map to near_miss / off_topic. Each item's `dial_id` is its own
    id, so `split_of` puts it in the tune or the held-out half like a doc2dial dialogue."""
    directory = Path(directory)
    items = []
    for row in _rows(directory / "answerable.jsonl"):
        golds = [str(g) for g in row.get("gold_doc_ids") or []]
        if not golds:
            raise ValueError(f"{row.get('id')}: no gold_doc_ids")
        items.append(
            QAItem(
                id=f"sd-{row['id']}",
                question=row["question"],
                gold_doc=golds[0],
                also_gold=tuple(golds[1:]),
                gold_answer=row.get("answer_evidence") or "",
                dial_id=f"sd-{row['id']}",
                kind="visitor",
            )
        )
    kinds = {"near-domain": "near_miss", "off-topic": "off_topic"}
    for row in _rows(directory / "unanswerable.jsonl"):
        kind = kinds.get(row.get("kind", ""))
        if kind is None:
            raise ValueError(f"{row.get('id')}: kind must be near-domain or off-topic, not {row.get('kind')!r}")
        items.append(QAItem(id=f"sd-{row['id']}", question=row["question"], dial_id=f"sd-{row['id']}", kind=kind))
    return items


def split_of(key: str) -> str:
    """ "tune" or "test", fixed by a hash of `key` (a dialogue id): tune on one half, report
    on the other, and every turn of a dialogue stays on one side."""
    return "tune" if hashlib.sha256(key.encode()).digest()[0] % 2 == 0 else "test"


# --- metrics ------------------------------------------------------------------------------

_CITATION = re.compile(r"\s*\[\d+\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """DialDoc/SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-words F1 of the normalised answer (citation markers removed) against the gold."""
    predicted = normalize_answer(_CITATION.sub("", prediction)).split()
    expected = normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _as_answer(result: Any) -> Answer:
    if isinstance(result, Answer):
        return result
    text, decision, cited, latency = result
    return Answer(str(text), str(decision), tuple(str(c) for c in cited or ()), float(latency))


def _rate(hits: int, total: int) -> float:
    return hits / total if total else float("nan")


def score(items: Sequence[QAItem], answers: Sequence[Answer]) -> dict[str, Any]:
    """The report of `evaluate` for answers already produced (one per item, same order)."""
    answerable = [(i, a) for i, a in zip(items, answers, strict=True) if i.answerable]
    unanswerable = [(i, a) for i, a in zip(items, answers, strict=True) if not i.answerable]

    def answerable_metrics(pairs: Sequence[tuple[QAItem, Answer]]) -> dict[str, Any]:
        answered = [(i, a) for i, a in pairs if a.cited]
        gold = sum(1 for i, a in answered if i.cites_gold(a.cited))
        f1s = [token_f1(a.text, i.gold_answer) if a.cited else 0.0 for i, a in pairs]
        return {
            "n": len(pairs),
            "gold_citation_rate": _rate(gold, len(pairs)),
            "answer_rate": _rate(len(answered), len(pairs)),
            "citation_precision": _rate(gold, len(answered)),
            "token_f1": sum(f1s) / len(f1s) if f1s else float("nan"),
            "token_f1_answered": (
                sum(token_f1(a.text, i.gold_answer) for i, a in answered) / len(answered) if answered else float("nan")
            ),
        }

    latencies = [a.latency * 1000 for a in answers]
    kinds = sorted({i.kind for i, _ in unanswerable})
    report: dict[str, Any] = {
        "n": len(items),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        **{k: v for k, v in answerable_metrics(answerable).items() if k != "n"},
        "abstention_rate": _rate(sum(1 for _, a in unanswerable if not a.cited), len(unanswerable)),
        "abstention_by_kind": {
            kind: _rate(
                sum(1 for i, a in unanswerable if i.kind == kind and not a.cited),
                sum(1 for i, _ in unanswerable if i.kind == kind),
            )
            for kind in kinds
        },
        "decisions": dict(sorted(Counter(a.decision for a in answers).items())),
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "mean": sum(latencies) / len(latencies) if latencies else float("nan"),
            "max": max(latencies) if latencies else float("nan"),
        },
        "by_kind": {
            kind: answerable_metrics([(i, a) for i, a in answerable if i.kind == kind])
            for kind in sorted({i.kind for i, _ in answerable})
        },
    }
    return report


def run(answer_fn: AnswerFn, items: Sequence[QAItem]) -> list[Answer]:
    return [_as_answer(answer_fn(item.question, list(item.history))) for item in items]


def evaluate(answer_fn: AnswerFn, items: Sequence[QAItem]) -> dict[str, Any]:
    """Ask every item through `answer_fn(question, history)` and score the answers (the
    report's fields are described in the module docstring)."""
    return score(items, run(answer_fn, items))
