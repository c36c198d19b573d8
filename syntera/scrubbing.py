"""What telemetry may carry: scrubbing for Sentry events, transactions, spans and breadcrumbs,
and for the console log's URLs. See docs/subsystems/operations.md ("Sentry").

Generic, not a list of routes: in every URL (an event's request, a span, a breadcrumb, or a
URL or path inside any text) a path segment that looks like a secret and every query value
that is not a plain number or word is replaced; emails, phone numbers and known token forms
are replaced in all text; values that are free text (message text, prompts) never leave at
all. One-time links of routes that do not exist yet are covered by the same rules.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

FILTERED = "[Filtered]"

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE_RE = re.compile(r"(?<![\w])\+?\d[\d\s().-]{7,}\d(?![\w])")
# Token forms with a known shape: API keys, visitor tokens, widget keys, JWTs, auth headers.
_TOKEN_RE = re.compile(
    r"(\b(?:sk_(?:live|test)|vt|wk|whsec)_[A-Za-z0-9_-]+"
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"
    r"|\bBearer\s+\S+)"
)
# Names of dict keys, headers and query parameters whose values are never sent.
SECRET_KEYS = re.compile(
    r"(pass|secret|token|key|auth|cookie|session|csrf|signature|sig\b|text|body|message|content|email|phone"
    r"|prompt|contact)",
    re.IGNORECASE,
)
# A URL with a scheme, or a bare path (/invite/...) not glued to a word ("and/or", "HTTP/1.1").
_URL_RE = re.compile(r"""(?:\b[a-z][a-z0-9+.-]*://[^\s"'<>]+|(?<![\w/.:~%-])/[^\s"'<>]+)""", re.IGNORECASE)
_WORD_RE = re.compile(r"[A-Za-z0-9_\-:.=~+]{16,}")
_HOSTLIKE_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)+(?::\d+)?")  # alpha.localhost:8000, a.b.module
_PLAIN_VALUE_RE = re.compile(r"\d{1,12}|[a-z][a-z_-]{0,15}")  # page=2, status=open, lang=en
_MARKERS = {FILTERED, "[redacted]"}  # a value replaced already stays as it is
_SQL_LITERAL_RE = re.compile(r"'(?:[^']|'')*'")
_URL_KEYS = {"url", "http.url", "url.full", "server.address.url", "http.request.url"}
_QUERY_KEYS = {"http.query", "url.query", "query_string"}
_FRAGMENT_KEYS = {"http.fragment", "url.fragment"}
_MAX_DEPTH = 12


def looks_secret(word: str) -> bool:
    """Whether a path segment or a word is a token rather than a name: a known token form, an
    email, a phone number, or a long mix of letters and digits (random tokens, signed values,
    Django's reset tokens). Host names and dotted module names are names."""
    if not word:
        return False
    if "@" in word or _TOKEN_RE.search(word) or (word.startswith("+") and word[1:].replace("-", "").isdigit()):
        return True
    if len(word) < 16 or _HOSTLIKE_RE.fullmatch(word):
        return False
    letters = sum(c.isalpha() for c in word)
    digits = sum(c.isdigit() for c in word)
    if letters >= 3 and digits >= 3:
        return True
    mixed_case = any(c.isupper() for c in word) and any(c.islower() for c in word)
    return (len(word) >= 24 and mixed_case) or len(word) >= 40


def scrub_query(query: str, marker: str = FILTERED) -> str:
    """`key=value&...` with every value replaced unless it is a plain number or word under a
    key that is not sensitive; a bare secret-looking item is replaced too."""
    items = []
    for item in query.split("&"):
        key, sep, value = item.partition("=")
        if not sep:
            items.append(marker if looks_secret(unquote_plus(key)) else key)
            continue
        plain = _PLAIN_VALUE_RE.fullmatch(unquote_plus(value)) and not SECRET_KEYS.search(unquote_plus(key))
        items.append(f"{key}={value if plain or not value or value in _MARKERS else marker}")
    return "&".join(items)


def scrub_url(url: str, marker: str = FILTERED) -> str:
    """A URL (or a bare path) with secret-looking path segments, query values, fragment and
    credentials replaced; scheme, host and the route's own words kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return marker
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{marker}@{netloc.rsplit('@', 1)[1]}"
    path = "/".join(marker if looks_secret(unquote(segment)) else segment for segment in parts.path.split("/"))
    result = f"{parts.scheme}://{netloc}{path}" if parts.scheme or netloc else path
    if parts.query or url.rstrip("#").endswith("?"):
        result += "?" + scrub_query(parts.query, marker)
    if parts.fragment:
        result += "#" + (parts.fragment if _PLAIN_VALUE_RE.fullmatch(parts.fragment) else marker)
    return result


def scrub_urls(text: str, marker: str = FILTERED) -> str:
    """Every URL and bare path inside `text`, scrubbed (the console log filter uses this)."""
    return _URL_RE.sub(lambda m: scrub_url(m.group(), marker), text)


def _scrub_prose(value: str, marker: str) -> str:
    value = _TOKEN_RE.sub(marker, value)
    value = _EMAIL_RE.sub(marker, value)
    value = _PHONE_RE.sub(marker, value)
    return _WORD_RE.sub(lambda m: marker if looks_secret(m.group()) else m.group(), value)


def scrub_text(value: str, marker: str = FILTERED) -> str:
    """URLs by the URL rules; elsewhere known token forms, emails, phone numbers and
    secret-looking words replaced."""
    parts, last = [], 0
    for match in _URL_RE.finditer(value):
        parts.append(_scrub_prose(value[last : match.start()], marker))
        parts.append(scrub_url(match.group(), marker))
        last = match.end()
    parts.append(_scrub_prose(value[last:], marker))
    return "".join(parts)


def scrub_sql(sql: str) -> str:
    """SQL with its string literals replaced (parameters are never sent at all)."""
    return scrub_text(_SQL_LITERAL_RE.sub(f"'{FILTERED}'", sql))


def scrub_value(value: Any) -> Any:
    """A value the code handled (a local variable, a task argument, a log parameter): free text
    (anything with a space, or long) is replaced whole; a single word is scrubbed as text."""
    if isinstance(value, str):
        return FILTERED if len(value) > 200 or len(value.strip().split()) > 1 else scrub_text(value)
    return value


def _walk(value: Any, leaf: Any, depth: int = 0) -> Any:
    """`leaf` applied to every string in a nested structure; values under sensitive keys replaced."""
    if depth > _MAX_DEPTH:
        return FILTERED
    if isinstance(value, dict):
        return {
            k: (FILTERED if isinstance(k, str) and SECRET_KEYS.search(k) else _walk(v, leaf, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_walk(v, leaf, depth + 1) for v in value]
    return leaf(value) if isinstance(value, str) else value


def scrub_structure(value: Any) -> Any:
    return _walk(value, scrub_text)


def scrub_values(value: Any) -> Any:
    return _walk(value, scrub_value)


def scrub_data(data: Any) -> Any:
    """A span's or breadcrumb's `data`: URLs and query strings by the URL rules, SQL parameters
    dropped, everything else as values (free text replaced)."""
    if not isinstance(data, dict):
        return scrub_values(data)
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        if key == "db.params":
            cleaned[key] = FILTERED
        elif key in _URL_KEYS and isinstance(value, str):
            cleaned[key] = scrub_url(value)
        elif key in _QUERY_KEYS and isinstance(value, str):
            cleaned[key] = scrub_query(value)
        elif key in _FRAGMENT_KEYS and value:
            cleaned[key] = FILTERED
        else:
            cleaned[key] = scrub_values({key: value})[key]
    return cleaned


def _log_message(record: logging.LogRecord) -> str:
    """A log record's message formatted with its arguments scrubbed as values."""
    args = record.args
    try:
        if isinstance(args, dict):
            return str(record.msg) % {k: scrub_value(v) for k, v in args.items()}
        if args:
            return str(record.msg) % tuple(scrub_value(a) for a in args)
    except (TypeError, ValueError, KeyError):
        return FILTERED
    return str(record.msg)


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """HTTP breadcrumbs (URL, query, fragment), log breadcrumbs (message rebuilt from scrubbed
    arguments, the record's extras as values), SQL breadcrumbs (literals), and any other."""
    record = (hint or {}).get("log_record")
    message = crumb.get("message")
    if isinstance(record, logging.LogRecord):
        crumb["message"] = scrub_text(_log_message(record))
    elif isinstance(message, str):
        crumb["message"] = scrub_sql(message) if crumb.get("category") == "query" else scrub_text(message)
    if "data" in crumb:
        crumb["data"] = scrub_data(crumb["data"])
    return crumb


def _scrub_request(request: dict[str, Any]) -> None:
    for key in ("data", "cookies", "env"):
        request.pop(key, None)
    if isinstance(request.get("url"), str):
        request["url"] = scrub_url(request["url"])
    if isinstance(request.get("query_string"), str):
        request["query_string"] = scrub_query(request["query_string"])
    elif "query_string" in request:
        request["query_string"] = FILTERED
    if "headers" in request:
        request["headers"] = scrub_structure(request["headers"])


def _scrub_exceptions(container: Any) -> Any:
    """Exception (or thread) values: messages as text, stack frames' local variables as values,
    source lines dropped (string literals in code: test data, prompts, seeded text)."""
    if not isinstance(container, dict) or not isinstance(container.get("values"), list):
        return scrub_structure(container)
    for value in container["values"]:
        if not isinstance(value, dict):
            continue
        for frame in (value.get("stacktrace") or {}).get("frames") or []:
            if isinstance(frame, dict) and "vars" in frame:
                frame["vars"] = scrub_values(frame["vars"])
        for key, item in list(value.items()):
            if key != "stacktrace":
                value[key] = scrub_structure(item)
        if isinstance(value.get("stacktrace"), dict):
            for frame in value["stacktrace"].get("frames") or []:
                for key in ("context_line", "pre_context", "post_context"):  # source lines: literals
                    frame.pop(key, None)
    return container


def _scrub_logentry(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return scrub_structure(entry)
    message = entry.get("message")
    params = entry.get("params")
    if isinstance(message, str):
        entry["message"] = scrub_text(message)
    if params:
        entry["params"] = scrub_values(params)
        try:
            entry["formatted"] = scrub_text(str(message) % tuple(entry["params"]))
        except (TypeError, ValueError):
            entry["formatted"] = entry["message"]
    elif isinstance(entry.get("formatted"), str):
        entry["formatted"] = scrub_text(entry["formatted"])
    return entry


def _scrub_span(span: dict[str, Any]) -> dict[str, Any]:
    description = span.get("description")
    if isinstance(description, str):
        span["description"] = (
            scrub_sql(description) if str(span.get("op", "")).startswith("db") else scrub_text(description)
        )
    if "data" in span:
        span["data"] = scrub_data(span["data"])
    if "tags" in span:
        span["tags"] = scrub_structure(span["tags"])
    return span


def scrub_event(event: dict[str, Any]) -> dict[str, Any]:
    """An error event or a transaction, scrubbed in place (and returned)."""
    request = event.get("request")
    if isinstance(request, dict):
        _scrub_request(request)
    if "user" in event:
        event["user"] = {"id": event["user"].get("id")} if isinstance(event["user"], dict) else {}
    if isinstance(event.get("transaction"), str):
        event["transaction"] = scrub_text(event["transaction"])
    for key in ("exception", "threads"):
        if key in event:
            event[key] = _scrub_exceptions(event[key])
    breadcrumbs = event.get("breadcrumbs")
    crumbs = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    if isinstance(crumbs, list):
        for crumb in crumbs:
            if isinstance(crumb, dict):
                scrub_breadcrumb(crumb)
    if "logentry" in event:
        event["logentry"] = _scrub_logentry(event["logentry"])
    if isinstance(event.get("message"), str):
        event["message"] = scrub_text(event["message"])
    if "extra" in event:
        event["extra"] = scrub_values(event["extra"])
    if "tags" in event:
        event["tags"] = scrub_structure(event["tags"])
    contexts = event.get("contexts")
    if isinstance(contexts, dict):
        for name, context in contexts.items():
            if name == "trace" and isinstance(context, dict):
                _scrub_span(context)  # its trace and span ids stay: they link the trace
                sampling = context.get("dynamic_sampling_context")  # becomes the envelope's header
                if isinstance(sampling, dict) and isinstance(sampling.get("transaction"), str):
                    sampling["transaction"] = scrub_text(sampling["transaction"])
            else:
                contexts[name] = scrub_structure(context)
    for span in event.get("spans") or []:
        if isinstance(span, dict):
            _scrub_span(span)
    return event
