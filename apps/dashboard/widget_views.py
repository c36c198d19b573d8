"""The chat widget's demo page: a plain page that embeds an inbox's widget exactly as a
customer's site does, with the one-line snippet to copy. The widget itself is
static/widget/syntera.js; its protocol is the widget WebSocket of BRIEF.md."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.html import format_html

from apps.conversations.models import Inbox

from .views import member_required

WIDGET_SCRIPT = "widget/syntera.js"


def widget_script_url(request: HttpRequest) -> str:
    """The script's absolute address on this workspace's host. The widget opens its WebSocket
    to the host it was loaded from, so the snippet must name the tenant's host."""
    return request.build_absolute_uri(f"{settings.STATIC_URL}{WIDGET_SCRIPT}")


def widget_snippet(request: HttpRequest, inbox: Inbox) -> str:
    return format_html('<script src="{}" data-key="{}" async></script>', widget_script_url(request), inbox.widget_key)


@member_required()
def widget_demo(request: HttpRequest, inbox_id: int) -> HttpResponse:
    inbox = get_object_or_404(Inbox, pk=inbox_id, channel=Inbox.Channel.WEB)
    allowed = [str(origin) for origin in (inbox.settings or {}).get("allowed_origins") or []]
    return render(
        request,
        "dashboard/widget_demo.html",
        {"inbox": inbox, "snippet": widget_snippet(request, inbox), "allowed_origins": allowed},
    )
