"""`manage.py eval_agent` as an operator runs it: a QA file of answerable questions (gold
document = source title) and one of unanswerable ones, through the real runtime."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_eval_agent_reports_gold_citations_and_abstentions(agent: Any, alpha: Any, tmp_path: Path) -> None:
    answerable = _write(
        tmp_path / "qa.jsonl",
        [
            {"id": "1", "question": "How long does standard shipping take?", "history": [],
             "doc_id": "Shipping times", "answer": "Standard shipping takes 3 to 5 business days within the EU."},
            {"id": "2", "question": "How long can I return an unused item?", "history": [],
             "doc_id": "Returns policy", "answer": "within 30 days of delivery"},
        ],
    )  # fmt: skip
    unanswerable = _write(
        tmp_path / "un.jsonl",
        [{"id": "u1", "question": "What is the capital of Mongolia?", "kind": "off_topic"}],
    )
    out = io.StringIO()
    report_path = tmp_path / "report.json"
    call_command(
        "eval_agent", str(agent.pk), str(answerable), str(unanswerable), tenant=alpha.slug, json=report_path, stdout=out
    )
    report = json.loads(report_path.read_text())
    assert report["answerable"] == 2 and report["unanswerable"] == 1
    assert report["gold_citation_rate"] == 1.0
    assert report["abstention_rate"] == 1.0
    assert report["token_f1"] > 0.3
    assert "gold-document citations (answerable): 100.0 %" in out.getvalue()


def test_eval_agent_bad_arguments(agent: Any, alpha: Any, tmp_path: Path) -> None:
    qa = _write(tmp_path / "qa.jsonl", [{"id": "u1", "question": "hi", "kind": "off_topic"}])
    with pytest.raises(CommandError, match="No workspace"):
        call_command("eval_agent", str(agent.pk), str(qa), tenant="nope")
    with pytest.raises(CommandError, match="No agent"):
        call_command("eval_agent", "Nobody", str(qa), tenant=alpha.slug)
    with pytest.raises(CommandError, match="No such QA file"):
        call_command("eval_agent", str(agent.pk), str(tmp_path / "missing.jsonl"), tenant=alpha.slug)
