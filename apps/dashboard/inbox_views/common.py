"""Helpers shared by the inbox pages: who is acting, JSON answers, and how a conversation and
its messages are shown (the same dicts feed the templates and the JSON endpoints)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from apps.accounts.middleware import end_session
from apps.accounts.services import Actor
from apps.conversations.models import AnswerFeedback, Conversation
from apps.conversations.stores import StoredMessage
from apps.knowledge.models import Source

View = Callable[..., HttpResponse]

OWNER_LABELS = {"ai": "AI agent", "queue": "Waiting for a human", "human": "Human"}
ROLE_LABELS = {"visitor": "Visitor", "ai": "AI agent", "agent": "Agent", "system": "System", "note": "Private note"}


def actor(request: HttpRequest) -> Actor:
    return Actor.for_membership(request.membership, ip=request.META.get("REMOTE_ADDR"))  # type: ignore[attr-defined]


def can(request: HttpRequest, role: str) -> bool:
    return bool(request.membership.has_role(role))  # type: ignore[attr-defined]


def refuse(request: HttpRequest, detail: str) -> HttpResponse:
    if wants_json(request):
        return json_error(403, "permission_denied", detail)
    return render(request, "error.html", {"code": "permission_denied", "detail": detail}, status=403)


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def json_response(data: dict[str, Any], status: int = 200) -> HttpResponse:
    """JSON with <, > and & escaped inside strings, so no byte of visitor or document text can
    be taken for markup by anything that sniffs the body."""
    text = json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    response = HttpResponse(text, status=status, content_type="application/json")
    response["Cache-Control"] = "private, no-store"
    return response


def json_error(status: int, code: str, detail: str, fields: dict[str, Any] | None = None) -> HttpResponse:
    return json_response({"error": {"code": code, "detail": detail, "fields": fields or {}}}, status=status)


def member_json(view: View) -> View:
    """A JSON endpoint for members: no membership of this host's tenant is a JSON 403 (the
    page's script says "log in again"), never a redirect to the login form."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request, "membership", None) is None:
            if request.user.is_authenticated:
                end_session(request)
            return json_error(403, "not_authenticated", "Your session has ended. Log in again.")
        return view(request, *args, **kwargs)

    return wrapper


def conversation_title(conversation: Conversation) -> str:
    if conversation.contact_id and conversation.contact is not None:
        return str(conversation.contact)
    for said in (conversation.claims, conversation.attributes):
        said = said if isinstance(said, dict) else {}
        for key in ("name", "email", "phone"):
            if said.get(key):
                return str(said[key])[:200]
    return f"Visitor #{conversation.pk}"


def owner_label(conversation: Conversation) -> str:
    label = OWNER_LABELS.get(conversation.owner, conversation.owner)
    if conversation.owner == Conversation.Owner.HUMAN and conversation.assignee_id and conversation.assignee:
        return f"{label}: {conversation.assignee.email}"
    return label


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def conversation_row(conversation: Conversation) -> dict[str, Any]:
    """A line of the inbox list: the services' summary row plus what the page shows."""
    from apps.conversations.services import summary_row

    return {
        **summary_row(conversation),
        "title": conversation_title(conversation),
        "inbox_name": conversation.inbox.name,
        "owner_label": owner_label(conversation),
        "assignee_label": conversation.assignee.email if conversation.assignee_id and conversation.assignee else "",
        "time": _time(conversation.last_message_at or conversation.created_at),
        "url": reverse("dashboard-conversation", args=[conversation.pk]),
    }


def conversation_state(conversation: Conversation) -> dict[str, Any]:
    """The conversation page's header: everything that can change while it is open."""
    return {
        **conversation_row(conversation),
        "snoozed_until": _time(conversation.snoozed_until),
        "rating": conversation.rating,
        "rating_comment": conversation.rating_comment,
        # A routing rule may have given the conversation an agent of its own.
        "can_hand_back": bool(getattr(conversation, "agent_id", None) or conversation.inbox.agent_id),
        "contact_url": reverse("dashboard-contact", args=[conversation.contact_id]) if conversation.contact_id else "",
    }


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def source_links(messages: Iterable[StoredMessage]) -> dict[int, str]:
    """Where a cited or retrieved source points: its own web address, else its knowledge
    base's page. One query for a whole transcript."""
    ids: set[int] = set()
    for message in messages:
        if message.role != "ai":
            continue
        for citation in message.citations or []:
            if isinstance(citation, dict) and (i := _int(citation.get("source_id"))) is not None:
                ids.add(i)
        for chunk in _dict(_dict(message.audit).get("retrieval")).get("chunks") or []:
            if isinstance(chunk, dict) and (i := _int(chunk.get("source_id"))) is not None:
                ids.add(i)
    return source_links_for(ids)


def source_links_for(ids: Iterable[int]) -> dict[int, str]:
    """Each source's own web address, else its knowledge base's page (one query)."""
    links = {}
    for row in Source.objects.filter(pk__in=set(ids)).values("id", "url", "knowledge_base_id"):
        url = str(row["url"] or "")
        page = reverse("dashboard-knowledge-base", args=[row["knowledge_base_id"]])
        links[int(row["id"])] = url if url.startswith(("https://", "http://")) else page
    return links


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def grounding(audit: dict[str, Any], links: dict[int, str]) -> dict[str, Any]:
    """The grounding audit of an AI message (apps/agents/runtime.py), in a fixed shape: the
    decision and its reason, which retrieved chunks were cited, every retrieved chunk with its
    scores, the prompt version and the model. Read defensively: it is stored JSON."""
    audit = audit if isinstance(audit, dict) else {}
    retrieval: dict[str, Any] = _dict(audit.get("retrieval"))
    cited = [c for c in audit.get("cited_chunks") or [] if _int(c) is not None]
    chunks = []
    for chunk in retrieval.get("chunks") or []:
        if not isinstance(chunk, dict):
            continue
        source_id = _int(chunk.get("source_id"))
        chunks.append(
            {
                "ref": _int(chunk.get("ref")),
                "chunk_id": _int(chunk.get("chunk_id")),
                "source_id": source_id,
                "title": str(chunk.get("title") or (f"Source {source_id}" if source_id else "")),
                "score": _number(chunk.get("score")),
                "similarity": _number(chunk.get("similarity")),
                "cited": _int(chunk.get("chunk_id")) in cited,
                "href": links.get(source_id, "") if source_id is not None else "",
            }
        )
    usage = _dict(audit.get("usage"))
    tools = [t for t in audit.get("tool_calls") or [] if isinstance(t, dict)]
    return {
        "decision": str(audit.get("decision") or ""),
        "reason": str(audit.get("reason") or ""),
        "prompt_version": _int(audit.get("prompt_version")),
        "model": str(audit.get("model") or ""),
        "provider": str(audit.get("provider") or ""),
        "provider_fallback": str(audit.get("provider_fallback") or ""),
        "query": str(retrieval.get("query") or ""),
        "skipped": str(retrieval.get("skipped") or ""),
        "below_threshold": bool(retrieval.get("below_threshold")),
        "best_similarity": _number(retrieval.get("best_similarity")),
        "unknown_words": [str(w) for w in retrieval.get("unknown_words") or [] if isinstance(w, str)][:32],
        "min_similarity": _number(audit.get("min_similarity")),
        "cited_chunks": cited,
        "chunks": chunks,
        "tool_calls": [{"tool": str(t.get("tool") or "?"), "ok": bool(t.get("ok"))} for t in tools],
        "prompt_tokens": _int(usage.get("prompt_tokens")),
        "completion_tokens": _int(usage.get("completion_tokens")),
        "latency_ms": _number(audit.get("latency_ms")),
    }


def message_view(
    message: StoredMessage, links: dict[int, str], title: str = "Visitor", feedback: bool | None = None
) -> dict[str, Any]:
    """A transcript entry for staff (notes included, marked private); `feedback`: the visitor's
    verdict on an AI answer (True helpful, False not, None none)."""
    citations = []
    for citation in message.citations or []:
        if not isinstance(citation, dict):
            continue
        source_id = _int(citation.get("source_id"))
        citations.append(
            {
                "title": str(citation.get("title") or (f"Source {source_id}" if source_id else "Source")),
                "href": links.get(source_id, "") if source_id is not None else "",
            }
        )
    fixed = {"visitor": title, "ai": "AI agent", "system": "System"}.get(message.role)
    who = fixed or message.author_label or ROLE_LABELS.get(message.role, message.role)
    return {
        "seq": message.seq,
        "role": message.role,
        "role_label": ROLE_LABELS.get(message.role, message.role),
        "who": who,
        "text": message.text,
        "time": _time(message.created_at),
        "created_at": message.created_at.isoformat(),
        "citations": citations,
        "grounding": grounding(message.audit, links) if message.role == "ai" else None,
        "feedback": feedback,
    }


def message_views(messages: list[StoredMessage], title: str) -> list[dict[str, Any]]:
    links = source_links(messages)
    answers = [m for m in messages if m.role == "ai"]
    verdicts: dict[int, bool] = {}
    if answers:
        verdicts = dict(
            AnswerFeedback.objects.filter(
                conversation_id=answers[0].conversation_id, seq__in=[m.seq for m in answers]
            ).values_list("seq", "helpful")
        )
    return [message_view(m, links, title, verdicts.get(m.seq)) for m in messages]
