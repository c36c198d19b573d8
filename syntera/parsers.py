"""The API's JSON parser: DRF's, refusing text PostgreSQL cannot store.

PostgreSQL text and jsonb cannot hold the NUL character (U+0000). DRF's CharField refuses it,
but keys and values inside free-form objects (contact or conversation attributes, agent
variables, ...) would reach the database and fail there as a server error. Any NUL in a key or
string of the body is refused up front with a 400 in the API's error shape.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def has_nul(value: Any) -> bool:
    """Whether a key or string anywhere in the parsed JSON value holds U+0000."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if has_nul(data):
            raise ParseError("JSON strings may not contain the NUL character (\\u0000).")
        return data
