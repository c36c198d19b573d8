"""MongoDB conversation store (`CONVERSATION_STORE=mongodb`), through `pymongo`.
See docs/subsystems/conversations.md, "Conversation stores".

Each tenant has its own database, `<prefix><schema>` (the prefix is the database named in
MONGODB_URL plus "_", default "syntera_"), holding one collection, `messages`, with two unique
indexes: (conversation_id, seq) and (conversation_id, client_id) where client_id is a string.

`seq` is allocated without multi-document transactions (a standalone server has none): read
the conversation's top seq through the index, insert top + 1, and on a duplicate-key error on
seq read again and retry. The unique index makes a second writer of the same seq fail, and a
seq is only ever chosen as "highest stored + 1", so the sequence has no gaps. A duplicate-key
error on client_id means the message is already stored: it is returned with `created` False.

`MONGODB_URL=mongomock://` uses `mongomock`'s in-process fake instead of a server: for tests
and a single process (a shell, runserver with eager Celery). Each process has its own fake, so
under `make run` the web and worker processes would not see each other's messages. The fake
checks unique indexes after inserting, so without help a failed insert is briefly visible to
other threads; each of its operations is therefore run under one process lock, which gives it
the per-operation atomicity a server has, while the read-then-insert race that the retry loop
handles stays real.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure, PyMongoError

from . import StoredMessage

DEFAULT_PREFIX = "syntera_"
COLLECTION = "messages"
# MongoDB database names are shorter than 64 bytes and may not contain /\. "$*<>:|? (nor
# NUL or space). Schema names are PostgreSQL identifiers (up to 63 characters), so a long
# one is cut and given a hash suffix to stay unique.
MAX_DB_NAME = 63
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
SERVER_SELECTION_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_MS = 5000
# Seq collisions are retried; each retry means another writer stored a message, so this bound
# is only reached under a pathological write storm on one conversation.
MAX_ATTEMPTS = 200

SEQ_INDEX = "conversation_seq"
CLIENT_ID_INDEX = "conversation_client_id"


class StoreUnavailable(RuntimeError):
    """MongoDB could not be reached or refused us; the message never names the password."""


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:
        raise ImproperlyConfigured("MONGODB_URL is not a valid URL.") from None


def redact(url: str) -> str:
    """The URL with its password replaced by ***."""
    parts = _split(url)
    if "@" not in parts.netloc:
        return url
    userinfo, hosts = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{hosts}" if ":" in userinfo else parts.netloc).geturl()


def _scrub(text: str, url: str) -> str:
    """Remove the URL's password (raw and percent-decoded) from an error text."""
    netloc = _split(url).netloc
    if "@" in netloc:
        userinfo = netloc.rsplit("@", 1)[0]
        if ":" in userinfo:
            password = userinfo.split(":", 1)[1]
            for secret in {password, unquote(password), quote(unquote(password), safe="")}:
                if secret:
                    text = text.replace(secret, "***")
    return text


def database_prefix(url: str) -> str:
    """`<database named in the URL>_`, or "syntera_" when the URL names none."""
    name = unquote(_split(url).path.lstrip("/"))
    if not name:
        return DEFAULT_PREFIX
    if not _SAFE_NAME.match(name) or len(name) > 40:
        raise ImproperlyConfigured(
            "The database in MONGODB_URL is used as the prefix of each tenant's database name: it must be "
            f"letters, digits, '_' or '-', at most 40 characters (got {name!r})."
        )
    return name if name.endswith("_") else name + "_"


def database_name(prefix: str, schema: str) -> str:
    """The tenant's database: `<prefix><schema>`, kept within MongoDB's name rules."""
    if not schema:
        raise ValueError("A conversation store call needs the tenant's schema.")
    name = prefix + schema
    if len(name) <= MAX_DB_NAME and _SAFE_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return f"{safe[: MAX_DB_NAME - len(digest) - 1]}_{digest}"


# One client per process and URL: a MongoClient is thread-safe and pools its connections.
# A process forked after the client was made (Celery's prefork pool) builds its own.
_clients_lock = threading.Lock()
_clients: dict[str, Any] = {}
_clients_pid = os.getpid()


def _make_client(url: str) -> Any:
    if _split(url).scheme == "mongomock":
        try:
            import mongomock
        except ImportError:
            raise ImproperlyConfigured(
                "MONGODB_URL=mongomock:// needs the mongomock package (requirements-dev.txt)."
            ) from None

        return mongomock.MongoClient(tz_aware=True)
    options: dict[str, Any] = {"tz_aware": True, "appname": "syntera"}
    lowered = url.lower()
    if "serverselectiontimeoutms" not in lowered:
        options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
    if "connecttimeoutms" not in lowered:
        options["connectTimeoutMS"] = CONNECT_TIMEOUT_MS
    try:
        return MongoClient(url, **options)
    except PyMongoError as error:  # InvalidURI, ConfigurationError (e.g. an SRV record not found)
        raise ImproperlyConfigured(f"MONGODB_URL ({redact(url)}) is not usable: {_scrub(str(error), url)}") from None


def client_for(url: str) -> Any:
    """The process's client for `url` (pymongo.MongoClient, or mongomock's for mongomock://)."""
    global _clients_pid
    with _clients_lock:
        if _clients_pid != os.getpid():
            _clients.clear()
            _ready.clear()
            _clients_pid = os.getpid()
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = _make_client(url)
        return client


# Databases whose indexes exist, by (URL, database name). create_index is idempotent; this
# only saves a round trip per call.
_ready: set[tuple[str, str]] = set()


def _millis(moment: datetime) -> datetime:
    """BSON dates keep milliseconds: cut to them so `append` returns what a read returns."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _stored(doc: dict[str, Any]) -> StoredMessage:
    return StoredMessage(
        conversation_id=int(doc["conversation_id"]),
        seq=int(doc["seq"]),
        role=doc["role"],
        text=doc["text"],
        created_at=_aware(doc["created_at"]),
        client_id=doc.get("client_id"),
        author_id=doc.get("author_id"),
        author_label=doc.get("author_label") or "",
        citations=list(doc.get("citations") or []),
        audit=dict(doc.get("audit") or {}),
    )


def _is_seq_clash(error: DuplicateKeyError) -> bool:
    """True when the server says the seq index was hit (mongomock does not say which)."""
    pattern = (error.details or {}).get("keyPattern") or {}
    return "seq" in pattern


# Serialises the fake's operations (see the module docstring); never taken for a server.
_fake_lock = threading.RLock()


class Store:
    name = "mongodb"

    # -- plumbing --------------------------------------------------------------------------

    def _url(self) -> str:
        url = str(getattr(settings, "MONGODB_URL", "") or "")
        if not url:
            raise ImproperlyConfigured(
                "CONVERSATION_STORE=mongodb needs MONGODB_URL (mongodb://[user:password@]host:27017/syntera, "
                "or mongomock:// for the in-process fake)."
            )
        return url

    @contextlib.contextmanager
    def _op(self, url: str) -> Iterator[None]:
        """One database operation: atomic for the fake, errors made readable for a server."""
        lock = _fake_lock if url.startswith("mongomock:") else contextlib.nullcontext()
        try:
            with lock:
                yield
        except ConnectionFailure as error:  # includes ServerSelectionTimeoutError
            detail = str(error).split(", Topology Description:")[0]  # the rest repeats it per server
            raise StoreUnavailable(
                f"MongoDB at {redact(url)} is unreachable (CONVERSATION_STORE=mongodb): {_scrub(detail, url)}"
            ) from None
        except OperationFailure as error:
            if error.code in (13, 18):  # Unauthorized, AuthenticationFailed
                raise StoreUnavailable(
                    f"MongoDB at {redact(url)} refused the credentials in MONGODB_URL: {_scrub(str(error), url)}"
                ) from None
            raise

    def _messages(self, schema: str) -> tuple[str, Collection[dict[str, Any]]]:
        url = self._url()
        name = database_name(database_prefix(url), schema)
        collection = client_for(url)[name][COLLECTION]
        if (url, name) not in _ready:
            with self._op(url):
                collection.create_index(
                    [("conversation_id", ASCENDING), ("seq", ASCENDING)], unique=True, name=SEQ_INDEX
                )
                collection.create_index(
                    [("conversation_id", ASCENDING), ("client_id", ASCENDING)],
                    unique=True,
                    partialFilterExpression={"client_id": {"$type": "string"}},
                    name=CLIENT_ID_INDEX,
                )
            _ready.add((url, name))
        return url, collection

    def _top(self, url: str, messages: Collection[dict[str, Any]], conversation_id: int) -> int:
        with self._op(url):
            doc = messages.find_one(
                {"conversation_id": conversation_id}, {"seq": 1, "_id": 0}, sort=[("seq", DESCENDING)]
            )
        return int(doc["seq"]) if doc else 0

    def _by_client_id(
        self, url: str, messages: Collection[dict[str, Any]], conversation_id: int, client_id: str
    ) -> StoredMessage | None:
        with self._op(url):
            doc = messages.find_one({"conversation_id": conversation_id, "client_id": client_id})
        return _stored(doc) if doc else None

    # -- the interface -----------------------------------------------------------------------

    def append(
        self,
        *,
        schema: str,
        conversation_id: int,
        role: str,
        text: str,
        client_id: str | None = None,
        author_id: int | None = None,
        author_label: str = "",
        citations: Sequence[dict[str, Any]] = (),
        audit: dict[str, Any] | None = None,
    ) -> tuple[StoredMessage, bool]:
        url, messages = self._messages(schema)
        client_id = client_id or None
        created_at = _millis(datetime.now(UTC))
        for attempt in range(MAX_ATTEMPTS):
            seq = self._top(url, messages, conversation_id) + 1
            doc: dict[str, Any] = {
                "conversation_id": conversation_id,
                "seq": seq,
                "role": role,
                "text": text,
                "client_id": client_id,
                "author_id": author_id,
                "author_label": author_label,
                "citations": list(citations),
                "audit": dict(audit or {}),
                "created_at": created_at,
            }
            try:
                with self._op(url):
                    messages.insert_one(doc)
            except DuplicateKeyError as error:
                if client_id and not _is_seq_clash(error):
                    existing = self._by_client_id(url, messages, conversation_id, client_id)
                    if existing is not None:
                        return existing, False
                # Another writer took this seq: read the new top and try again, after a short
                # random pause so that a crowd of writers does not collide in lockstep.
                time.sleep(random.random() * min(0.0005 * 2**attempt, 0.02))  # noqa: S311 (jitter)
                continue
            return _stored(doc), True
        raise StoreUnavailable(
            f"Could not allocate a seq in conversation {conversation_id} after {MAX_ATTEMPTS} attempts."
        )

    def after(self, *, schema: str, conversation_id: int, after_seq: int, limit: int = 500) -> list[StoredMessage]:
        if limit <= 0:  # MongoDB reads limit 0 as "no limit"
            return []
        url, messages = self._messages(schema)
        with self._op(url):
            docs = list(
                messages.find({"conversation_id": conversation_id, "seq": {"$gt": after_seq}})
                .sort("seq", ASCENDING)
                .limit(limit)
            )
        return [_stored(d) for d in docs]

    def before(
        self, *, schema: str, conversation_id: int, before_seq: int | None, limit: int = 50
    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        url, messages = self._messages(schema)
        query: dict[str, Any] = {"conversation_id": conversation_id}
        if before_seq is not None:
            query["seq"] = {"$lt": before_seq}
        with self._op(url):
            docs = list(messages.find(query).sort("seq", DESCENDING).limit(limit))
        return [_stored(d) for d in reversed(docs)]

    def last_seq(self, *, schema: str, conversation_id: int) -> int:
        url, messages = self._messages(schema)
        return self._top(url, messages, conversation_id)

    def delete_conversation(self, *, schema: str, conversation_id: int) -> int:
        url, messages = self._messages(schema)
        with self._op(url):
            result = messages.delete_many({"conversation_id": conversation_id})
        return int(result.deleted_count)

    def drop_tenant(self, *, schema: str) -> None:
        """Drop the tenant's database (workspace deletion, tests). Dropping one that does not
        exist is no error."""
        url = self._url()
        name = database_name(database_prefix(url), schema)
        with self._op(url):
            client_for(url).drop_database(name)
        _ready.discard((url, name))
