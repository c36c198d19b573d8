"""The staff inbox: the conversation list (`/dashboard/inbox/`, JSON at
`/dashboard/inbox/conversations.json`) and one conversation (`/dashboard/inbox/<id>/`, new
messages as JSON at `messages.json?after=<seq>`), with replies, private notes, takeover and
hand-back, status and tags.

Everyone in the workspace reads; the agent role and up act. Writes go through
apps/conversations/services.py, which stores, audits and publishes the staff events the page
listens to. Transcripts are read from the conversation store, whichever backend it is.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.models import Role
from apps.conversations import selectors, services
from apps.conversations.identity import identity_state
from apps.conversations.models import Conversation
from apps.crm.selectors import merge_candidates
from syntera.errors import ApplicationError

from ..views import member_required
from . import queries
from .common import (
    actor,
    can,
    conversation_row,
    conversation_state,
    json_error,
    json_response,
    member_json,
    message_views,
    refuse,
    source_links_for,
    wants_json,
)
from .forms import MAX_REPLY_CHARS, InboxFilterForm, ReplyForm, StatusForm, TagsForm

PAGE_SIZE = 50
TRANSCRIPT_PAGE = 300  # messages the page shows at first; older ones load on demand
MESSAGES_PAGE = 200  # messages per JSON answer


def _list_page(request: HttpRequest, form: InboxFilterForm) -> Any:
    user_id = request.user.pk
    rows = selectors.conversation_list(user_id=user_id, **form.filters())
    return Paginator(rows, PAGE_SIZE).get_page(form.cleaned_data.get("page") or 1)


@member_required()
def inbox(request: HttpRequest) -> HttpResponse:
    form = InboxFilterForm(request.GET)
    page = None
    if form.is_valid():
        page = _list_page(request, form)
    context = {
        "form": form,
        "page": page,
        "rows": [conversation_row(c) for c in page] if page is not None else [],
        "query": queries.filters_query(request.GET.dict()),
        "can_reply": can(request, Role.AGENT),
        "can_manage": can(request, Role.ADMIN),
    }
    return render(request, "dashboard/inbox.html", context, status=200 if page is not None else 400)


@require_GET
@member_json
def inbox_json(request: HttpRequest) -> HttpResponse:
    """The inbox list with the page's filters: `{"conversations": [...], "page", "pages",
    "count"}`; each row is the services' summary row plus title, inbox name, owner and
    assignee labels, time and URL."""
    form = InboxFilterForm(request.GET)
    if not form.is_valid():
        fields = {k: [str(e) for e in v] for k, v in form.errors.items()}
        return json_error(400, "invalid", "Some filters are not valid.", fields)
    page = _list_page(request, form)
    return json_response(
        {
            "conversations": [conversation_row(c) for c in page],
            "page": page.number,
            "pages": page.paginator.num_pages,
            "count": page.paginator.count,
        }
    )


def _conversation_or_none(conversation_id: int) -> Conversation | None:
    return selectors.conversation_get(conversation_id)


def _not_found(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        return json_error(404, "not_found", "No such conversation.")
    return render(request, "error.html", {"code": "not_found", "detail": "No such conversation."}, status=404)


def _conversation_page(
    request: HttpRequest,
    conversation: Conversation,
    *,
    status: int = 200,
    reply_form: ReplyForm | None = None,
    status_form: StatusForm | None = None,
    tags_form: TagsForm | None = None,
    merge_form: Any = None,
    action_error: str = "",
) -> HttpResponse:
    from ..crm_views import MergeForm

    state = conversation_state(conversation)
    contact = conversation.contact if conversation.contact_id else None
    unverified = contact is not None and not contact.verified
    stored = selectors.messages_page(conversation.pk, limit=TRANSCRIPT_PAGE)
    context = {
        "conversation": conversation,
        "state": state,
        "transcript": message_views(stored, state["title"]),
        "first_seq": stored[0].seq if stored else 0,
        "last_seq": stored[-1].seq if stored else 0,
        "has_earlier": bool(stored) and stored[0].seq > 1,
        "attributes": sorted((str(k), str(v)) for k, v in (conversation.attributes or {}).items()),
        "claims": sorted((str(k), str(v)) for k, v in (conversation.claims or {}).items()),
        "identity": identity_state(conversation),
        "candidates": merge_candidates(contact=contact, claims=conversation.claims) if unverified else [],
        "merge_form": merge_form or MergeForm(),
        "can_merge": unverified,
        "reply_form": reply_form or ReplyForm(initial={"role": "agent", "client_id": uuid.uuid4().hex}),
        "status_form": status_form
        or StatusForm(initial={"status": conversation.status, "snoozed_until": conversation.snoozed_until}),
        "tags_form": tags_form or TagsForm(initial={"tags": ", ".join(conversation.tags)}),
        "action_error": action_error,
        "can_reply": can(request, Role.AGENT),
        "max_chars": MAX_REPLY_CHARS,
        "statuses": Conversation.Status.choices,
        "is_mine": conversation.owner == Conversation.Owner.HUMAN and conversation.assignee_id == request.user.pk,
    }
    return render(request, "dashboard/conversation.html", context, status=status)


@member_required()
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_none(conversation_id)
    if conversation is None:
        return _not_found(request)
    return _conversation_page(request, conversation)


def _seq_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise ApplicationError(f"{name} is a message number (a whole number from 0).", fields={name: ["Not a number."]})
    return int(raw)


@require_GET
@member_json
def conversation_messages(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """`?after=<seq>`: the messages after that seq, oldest first (at most 200; `has_more`
    says whether to ask again). `?before=<seq>`: the 200 just before it. Both answers carry
    the conversation's current state (`conversation`)."""
    conversation = _conversation_or_none(conversation_id)
    if conversation is None:
        return json_error(404, "not_found", "No such conversation.")
    try:
        after = _seq_param(request, "after")
        before = _seq_param(request, "before")
    except ApplicationError as exc:
        return json_error(400, exc.code, exc.detail, exc.fields)
    if after is not None and before is not None:
        return json_error(400, "invalid", "Ask for messages after a seq or before one, not both.")
    if before is not None:
        stored = selectors.messages_page(conversation.pk, before_seq=before, limit=MESSAGES_PAGE)
        has_more = bool(stored) and stored[0].seq > 1
    else:
        stored = selectors.messages_page(conversation.pk, after_seq=after or 0, limit=MESSAGES_PAGE + 1)
        has_more = len(stored) > MESSAGES_PAGE
        stored = stored[:MESSAGES_PAGE]
    state = conversation_state(conversation)
    return json_response(
        {"conversation": state, "messages": message_views(stored, state["title"]), "has_more": has_more}
    )


@require_POST
@member_required()
def conversation_reply(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """A reply to the visitor (role agent: it takes the conversation over from the AI) or a
    private note (role note: staff only). With `Accept: application/json` the answer is JSON
    (`{"message", "created", "conversation"}` or the error shape); otherwise a redirect."""
    conversation = _conversation_or_none(conversation_id)
    if conversation is None:
        return _not_found(request)
    if not can(request, Role.AGENT):
        return refuse(request, "Viewers cannot reply or write notes.")
    form = ReplyForm(request.POST)
    if not form.is_valid():
        if wants_json(request):
            fields = {k: [str(e) for e in v] for k, v in form.errors.items()}
            first = next(iter(fields.values()))[0]
            return json_error(400, "invalid", first, fields)
        return _conversation_page(request, conversation, status=400, reply_form=form)
    role = form.cleaned_data["role"]
    try:
        message, created = services.message_post(
            conversation_id=conversation.pk,
            role=role,
            text=form.cleaned_data["text"],
            client_id=form.cleaned_data["client_id"],
            actor=actor(request),
        )
    except ApplicationError as exc:
        if wants_json(request):
            return json_error(exc.status_code, exc.code, exc.detail, exc.fields)
        form.add_error(None, exc.detail)
        return _conversation_page(request, conversation, status=exc.status_code, reply_form=form)
    if wants_json(request):
        conversation = _conversation_or_none(conversation.pk) or conversation
        state = conversation_state(conversation)
        (view,) = message_views([message], state["title"])
        return json_response({"message": view, "created": created, "conversation": state})
    messages.success(request, "Note added." if role == "note" else "Reply sent.")
    return redirect("dashboard-conversation", conversation_id=conversation.pk)


@require_POST
@member_json
def conversation_suggest(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """A draft reply from the conversation's AI agent, as JSON `{"text", "decision", "reason",
    "citations": [{"title", "href"}]}` (conversations.services.reply_suggestion)."""
    conversation = _conversation_or_none(conversation_id)
    if conversation is None:
        return json_error(404, "not_found", "No such conversation.")
    try:
        suggestion = services.reply_suggestion(actor=actor(request), conversation=conversation)
    except ApplicationError as exc:
        return json_error(exc.status_code, exc.code, exc.detail, exc.fields)
    links = source_links_for(int(c["source_id"]) for c in suggestion["citations"])
    cited = [{"title": c["title"], "href": links.get(int(c["source_id"]), "")} for c in suggestion["citations"]]
    return json_response({**suggestion, "citations": cited})


ACTIONS = {
    "take_over": "You took over the conversation.",
    "hand_back": "The AI agent is back in the conversation.",
    "status": "Status changed.",
    "tags": "Tags saved.",
    "merge": "",
}


@require_POST
@member_required()
def conversation_action(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """`action`: take_over | hand_back | status (`status`, `snoozed_until`) | tags (`tags`) |
    merge (`into`, `confirm`: the visitor's unverified contact into a known one)."""
    conversation = _conversation_or_none(conversation_id)
    if conversation is None:
        return _not_found(request)
    if not can(request, Role.AGENT):
        return refuse(request, "Viewers cannot change conversations.")
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        return _conversation_page(request, conversation, status=400, action_error="Unknown action.")
    who = actor(request)
    try:
        if action == "take_over":
            services.conversation_take_over(actor=who, conversation=conversation)
        elif action == "hand_back":
            services.conversation_hand_back(actor=who, conversation=conversation)
        elif action == "merge":
            return _merge(request, conversation)
        elif action == "status":
            status_form = StatusForm(request.POST)
            if not status_form.is_valid():
                return _conversation_page(request, conversation, status=400, status_form=status_form)
            services.conversation_set_status(
                actor=who,
                conversation=conversation,
                status=status_form.cleaned_data["status"],
                snoozed_until=status_form.cleaned_data["snoozed_until"],
            )
        else:
            tags_form = TagsForm(request.POST)
            if not tags_form.is_valid():
                return _conversation_page(request, conversation, status=400, tags_form=tags_form)
            services.conversation_set_tags(actor=who, conversation=conversation, tags=tags_form.cleaned_data["tags"])
    except ApplicationError as exc:
        return _conversation_page(request, conversation, status=exc.status_code, action_error=exc.detail)
    messages.success(request, ACTIONS[action])
    return redirect("dashboard-conversation", conversation_id=conversation.pk)


def _merge(request: HttpRequest, conversation: Conversation) -> HttpResponse:
    """Staff checked who the visitor is: their unverified contact joins the known one, and
    with it this conversation (the AI then knows what that contact's memory holds)."""
    from ..crm_views import MergeForm, merge_contact

    source = conversation.contact if conversation.contact_id else None
    if source is None or source.verified:
        detail = "Only a visitor's unverified contact is merged from here; open the contact's page instead."
        return _conversation_page(request, conversation, status=400, action_error=detail)
    form = MergeForm(request.POST, source=source)
    if not form.is_valid() or merge_contact(request, source, form) is None:
        return _conversation_page(request, conversation, status=400, merge_form=form)
    return redirect("dashboard-conversation", conversation_id=conversation.pk)
