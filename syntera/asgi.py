"""ASGI entry point: HTTP through Django, WebSockets through Channels with tenant resolution.

See docs/subsystems/realtime.md.
"""

import os
import resource
from typing import Any

from django.core.asgi import get_asgi_application

# Past the kernel's own ceiling (fs.nr_open) setrlimit fails; 1,048,576 is its default.
_NR_OPEN = 1 << 20


def raise_open_files_limit() -> tuple[int, int]:
    """Lift this process's soft limit on open files to its hard limit. Every open WebSocket is
    a file descriptor, and many systems start processes with a soft limit of 1,024 while the
    hard one allows far more (docs/deployment.md, "Sockets per box"). Returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _NR_OPEN if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft, hard  # the limit stays as the system set it
        soft = wanted
    return soft, hard


raise_open_files_limit()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syntera.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from apps.conversations.consumers import WidgetConsumer  # noqa: E402
from apps.dashboard.consumers import StaffConsumer  # noqa: E402
from apps.tenants.channels import TenantASGIMiddleware  # noqa: E402
from syntera.observability import with_sentry  # noqa: E402

websocket_urlpatterns = [
    # Cookie-authenticated: only the workspace's own pages may open it (checked by the
    # consumer against the tenant's hosts, so a refusal carries its close code, 4403).
    path("ws/staff/", StaffConsumer.as_asgi()),
    # Public: the visitor's token authenticates; the inbox's allowed origins are checked
    # by the consumer itself (a widget runs on the customer's site, not ours).
    path("ws/widget/", WidgetConsumer.as_asgi()),
]

application: Any = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TenantASGIMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Errors and transactions of WebSocket consumers reach Sentry too (when SENTRY_DSN is set),
# through the same scrubbing hooks as HTTP.
application = with_sentry(application)
