"""`manage.py eval_agent <agent> <qa file> --tenant <slug>`: answer-quality figures of an
agent through the real runtime (retrieval, provider, grounding), as the channels run it.

The QA file is doc2dial-style JSONL (optionally .gz): `{"id", "question", "history",
"doc_id", "answer"}` for answerable questions, or `{"id", "question", "kind"}` (kind
off_topic | near_miss) for questions the knowledge does not answer; several files may be
given. A cited source counts as the gold document when its title equals the item's
`doc_id` (ingest the documents with their ids as titles, as the agent benchmark does).

Reports: share of answerable questions answered with a citation of the gold document,
token-F1 of the answer against the gold span, abstention rate on unanswerable questions,
decisions, and latency (see apps/agents/evaluation.py). Nothing is written: turns run dry.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import get_tenant_model, tenant_context

from apps.agents import evaluation
from apps.agents.commit import turn_meter
from apps.agents.models import Agent
from apps.agents.providers import Turn
from apps.agents.runtime import answer_turn
from apps.agents.runtime.turns import TurnInput


def _load(path: Path) -> list[evaluation.QAItem]:
    if not path.is_file():
        raise CommandError(f"No such QA file: {path}")
    with evaluation._open(path) as handle:
        first = next((json.loads(line) for line in handle if line.strip()), None)
    if first is None:
        raise CommandError(f"{path} holds no questions.")
    return evaluation.load_unanswerable(path) if "kind" in first else evaluation.load_doc2dial(path)


class Command(BaseCommand):
    help = "Evaluate an agent's answers on QA files (doc2dial-style JSONL) through the real runtime."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent", help="Agent id or name.")
        parser.add_argument("qa_files", nargs="+", type=Path)
        parser.add_argument("--tenant", required=True, help="The workspace slug.")
        parser.add_argument("--limit", type=int, default=0, help="At most this many questions per file.")
        parser.add_argument("--split", choices=["all", "tune", "test"], default="all")
        parser.add_argument("--json", type=Path, help="Also write the report here.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant_model().objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No workspace {options['tenant']!r}.")
        items: list[evaluation.QAItem] = []
        for path in options["qa_files"]:
            loaded = _load(path)
            if options["split"] != "all":
                loaded = [i for i in loaded if evaluation.split_of(i.dial_id or i.id) == options["split"]]
            items += loaded[: options["limit"]] if options["limit"] else loaded
        with tenant_context(tenant):
            ref = options["agent"]
            agent = (
                Agent.objects.filter(pk=int(ref)).first() if ref.isdigit() else Agent.objects.filter(name=ref).first()
            )
            if agent is None:
                raise CommandError(f"No agent {ref!r} in {tenant.slug}.")

            def answer(question: str, history: evaluation.History) -> evaluation.Answer:
                turns = [Turn("user" if role == "user" else "assistant", text) for role, text in history]
                turns.append(Turn("user", question))
                started = time.perf_counter()
                result = answer_turn(agent=agent, tenant=tenant, conversation=TurnInput(turns=turns, dry_run=True))
                turn_meter(result=result)
                cited = tuple(dict.fromkeys(c.title for c in result.citations))
                return evaluation.Answer(result.text, result.decision, cited, time.perf_counter() - started)

            report = evaluation.evaluate(answer, items)
        report["agent"] = {
            "id": agent.pk,
            "name": agent.name,
            "provider": agent.provider,
            "prompt_version": agent.prompt_version,
        }
        report["files"] = [str(p) for p in options["qa_files"]]
        if options["json"]:
            options["json"].write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
        self.stdout.write(self._table(report))

    def _table(self, report: dict[str, Any]) -> str:
        def pct(value: Any) -> str:
            return "-" if value is None else f"{100 * float(value):.1f} %"

        latency = report.get("latency_ms") or {}
        lines = [
            f"questions: {report['n']} ({report['answerable']} answerable, {report['unanswerable']} unanswerable)",
            f"gold-document citations (answerable): {pct(report.get('gold_citation_rate'))}",
            f"answered (answerable): {pct(report.get('answer_rate'))}",
            f"token-F1 vs gold span: {report.get('token_f1', 0):.3f}",
            f"abstention (unanswerable): {pct(report.get('abstention_rate'))}",
            f"latency ms: p50 {latency.get('p50', 0):.0f}, p95 {latency.get('p95', 0):.0f}",
            f"decisions: {json.dumps(report.get('decisions', {}), sort_keys=True)}",
        ]
        return "\n".join(lines)
