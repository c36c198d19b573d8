"""What the inbox pages read besides the conversations' shared reads (apps/conversations/selectors.py)."""

from __future__ import annotations

from typing import Any


def filters_query(data: dict[str, Any]) -> str:
    """The list's filters as a query string (without the page), for links and the JSON URL."""
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in data.items() if k != "page" and v not in (None, "")})
