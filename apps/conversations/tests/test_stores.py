"""The conversation-store contract (apps/conversations/stores/), one suite run against every store.

- `postgres`: always, on the real PostgreSQL test database, in the tenants' schemas. The store
  locks the conversation row, so each test creates real Inbox and Conversation rows. They are
  committed, since the concurrent tests write from several threads, each on its own
  connection: every postgres call runs on a worker connection in autocommit (`_Committer`),
  and the test deletes its rows when it ends. (A `django_db(transaction=True)` test cannot be
  used: its flush at teardown truncates the public schema, which tenant tables reference, and
  fails.)
- `mongodb-server`: through `pymongo` against the MongoDB server named by MONGODB_URL in the
  environment, when it is set and answers a ping. Databases get a `test_syntera_<hex>_`
  prefix and are dropped at the end.
- `mongodb-mongomock`: otherwise, against `mongomock`'s in-process fake (MONGODB_URL=mongomock://).
  It checks the store's logic (seq allocation and retries, idempotency, paging, per-tenant
  databases), not pymongo's wire path or a server's index behaviour.
- `mongodb-wire`: always, through `pymongo` against `tests/standins/mongo_server.py`, a local
  stand-in that speaks MongoDB's documented wire protocol over a mongomock engine, so
  pymongo's request path really runs: the handshake and server selection, OP_MSG, cursors
  paged with getMore, and the decoding of duplicate-key write errors (with the `keyPattern`
  a server puts in them, which the store uses to tell a seq clash from a repeated client_id).

The test id says which MongoDB ran.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context

from apps.conversations.stores import ConversationStore, StoredMessage
from tests.standins.mongo_server import MongoStandIn

pytestmark = pytest.mark.django_db
T = TypeVar("T")
THREADS = 8
PER_THREAD = 25


def _mongodb_target() -> tuple[str, str]:
    """("server", url) when MONGODB_URL names a MongoDB that answers, else ("mongomock", url)."""
    url = os.environ.get("MONGODB_URL", "")
    if url and not url.startswith("mongomock:"):
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        client: Any = None
        try:
            client = MongoClient(url, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000)
            client.admin.command("ping")
            return "server", url
        except (PyMongoError, ValueError):
            pass
        finally:
            if client is not None:
                client.close()
    return "mongomock", "mongomock://localhost/"


MONGODB_KIND, MONGODB_BASE_URL = _mongodb_target()


def _test_url(base: str) -> str:
    """The base URL with a fresh database prefix; credentials keep authenticating where they did."""
    parts = urlsplit(base)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if "@" in parts.netloc and not any(k.lower() == "authsource" for k, _ in query):
        query.append(("authSource", parts.path.lstrip("/") or "admin"))
    return urlunsplit(parts._replace(path=f"/test_syntera_{secrets.token_hex(4)}", query=urlencode(query)))


class _Committer:
    """Runs calls on one worker thread with its own database connection, in autocommit: the
    test's own connection sits in pytest-django's rolled-back transaction, which other
    connections cannot see. Closes the connection when done."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-contract")

    def __call__(self, schema: str, call: Callable[[], T]) -> T:
        def run() -> T:
            with schema_context(schema):
                return call()

        return self.pool.submit(run).result(timeout=120)

    def close(self) -> None:
        self.pool.submit(lambda: connection.close()).result(timeout=30)  # the worker's own connection
        self.pool.shutdown()


def _direct(schema: str, call: Callable[[], T]) -> T:
    with schema_context(schema):
        return call()


@dataclass
class Backend:
    name: str
    store: ConversationStore
    schemas: tuple[str, str]  # alpha's and beta's
    make_conversation: Callable[[str, int | None], int]
    # How a call reaches the store: in the tenant's schema (as in every service), on a
    # connection whose writes other connections see.
    run: Callable[[str, Callable[[], Any]], Any] = _direct
    made: list[tuple[str, int]] = field(default_factory=list)

    def conversation(self, schema: str | None = None, pk: int | None = None) -> int:
        schema = schema or self.schemas[0]
        conversation_id = int(self.run(schema, lambda: self.make_conversation(schema, pk)))
        self.made.append((schema, conversation_id))
        return conversation_id

    def append(
        self, conversation_id: int, text: str, schema: str | None = None, **kw: Any
    ) -> tuple[StoredMessage, bool]:
        schema = schema or self.schemas[0]
        role = kw.pop("role", "visitor")
        return self.run(
            schema,
            lambda: self.store.append(schema=schema, conversation_id=conversation_id, role=role, text=text, **kw),
        )

    def after(
        self, conversation_id: int, after_seq: int = 0, schema: str | None = None, **kw: Any
    ) -> list[StoredMessage]:
        schema = schema or self.schemas[0]
        return self.run(
            schema, lambda: self.store.after(schema=schema, conversation_id=conversation_id, after_seq=after_seq, **kw)
        )

    def before(
        self, conversation_id: int, before_seq: int | None, schema: str | None = None, **kw: Any
    ) -> list[StoredMessage]:
        schema = schema or self.schemas[0]
        return self.run(
            schema,
            lambda: self.store.before(schema=schema, conversation_id=conversation_id, before_seq=before_seq, **kw),
        )

    def last_seq(self, conversation_id: int, schema: str | None = None) -> int:
        schema = schema or self.schemas[0]
        return int(self.run(schema, lambda: self.store.last_seq(schema=schema, conversation_id=conversation_id)))

    def delete(self, conversation_id: int, schema: str | None = None) -> int:
        schema = schema or self.schemas[0]
        return int(
            self.run(schema, lambda: self.store.delete_conversation(schema=schema, conversation_id=conversation_id))
        )

    def threads(self, count: int, work: Callable[[int], Any], schema: str | None = None) -> list[Any]:
        """Run work(0..count-1) in threads released together; each thread uses its own database
        connection in the tenant's schema and closes it at the end."""
        schema = schema or self.schemas[0]
        barrier = threading.Barrier(count)
        results: list[Any] = [None] * count
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                with schema_context(schema):
                    barrier.wait(timeout=30)
                    results[i] = work(i)
            except BaseException as error:
                errors.append(error)
            finally:
                connection.close()

        workers = [threading.Thread(target=run, args=(i,)) for i in range(count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert not any(w.is_alive() for w in workers), "a writer thread hung"
        if errors:
            raise errors[0]
        return results


@contextlib.contextmanager
def _postgres(schemas: tuple[str, str]) -> Iterator[Backend]:
    from apps.conversations.models import Conversation, Inbox
    from apps.conversations.stores.postgres import Store

    inboxes: dict[str, int] = {}

    def make(schema: str, pk: int | None) -> int:
        if schema not in inboxes:
            inboxes[schema] = Inbox.objects.create(name="store contract").pk
        return int(Conversation.objects.create(inbox_id=inboxes[schema], **({"pk": pk} if pk else {})).pk)

    committer = _Committer()
    backend = Backend("postgres", Store(), schemas, make, run=committer)
    try:
        yield backend
    finally:
        for schema in schemas:
            mine = [c for s, c in backend.made if s == schema]

            def clean(mine: list[int] = mine, inbox: int = inboxes.get(schema, 0)) -> None:
                Conversation.objects.filter(pk__in=mine).delete()  # messages go with them (CASCADE)
                Inbox.objects.filter(pk=inbox).delete()

            committer(schema, clean)
        committer.close()


def _drop_test_databases(url: str) -> None:
    from apps.conversations.stores.mongodb import client_for, database_prefix

    client = client_for(url)
    prefix = database_prefix(url)
    for name in client.list_database_names():
        if name.startswith(prefix):
            client.drop_database(name)


@pytest.fixture(scope="module")
def mongodb_url() -> Iterator[str]:
    """One database prefix for this module's MongoDB tests; its databases are dropped after."""
    url = _test_url(MONGODB_BASE_URL)
    yield url
    _drop_test_databases(url)


@pytest.fixture(scope="session")
def mongo_standin() -> Iterator[MongoStandIn]:
    standin = MongoStandIn().start()
    yield standin
    standin.close()


@pytest.fixture(scope="module")
def mongodb_wire_url(mongo_standin: MongoStandIn) -> Iterator[str]:
    """Like `mongodb_url`, on the stand-in; the process's client for it is closed after."""
    from apps.conversations.stores.mongodb import client_for

    url = _test_url(mongo_standin.url)
    yield url
    _drop_test_databases(url)
    client_for(url).close()


_mongo_ids = itertools.count(1)


@pytest.fixture(params=["postgres", f"mongodb-{MONGODB_KIND}", "mongodb-wire"])
def backend(request: Any, alpha: Any, beta: Any, settings: Any) -> Iterator[Backend]:
    """A store with its helpers, for alpha's and beta's schemas."""
    schemas = (alpha.schema, beta.schema)
    if request.param == "postgres":
        with _postgres(schemas) as backend:
            yield backend
    else:
        from apps.conversations.stores.mongodb import Store

        settings.MONGODB_URL = request.getfixturevalue(
            "mongodb_wire_url" if request.param == "mongodb-wire" else "mongodb_url"
        )
        yield Backend(request.param, Store(), schemas, lambda _schema, pk: pk or next(_mongo_ids) * 1000)


def _free_id(backend: Backend) -> int | None:
    """A conversation id unused in both tenants (postgres); None lets the fake pick one."""
    if backend.name != "postgres":
        return None
    from django.db.models import Max

    from apps.conversations.models import Conversation

    top = 0
    for schema in backend.schemas:
        top = max(top, backend.run(schema, lambda: Conversation.objects.aggregate(top=Max("pk"))["top"] or 0))
    return top + 1000


# --- the contract -------------------------------------------------------------------------


def test_append_numbers_from_one_and_reads_back_what_it_returned(backend: Backend) -> None:
    conv = backend.conversation()
    citations = [{"source": "Returns policy", "chunk": 7, "quote": "within 30 days"}]
    sent = [
        backend.append(conv, "Hello, I need help", client_id="c-1"),
        backend.append(conv, "Happy to help!", role="ai", citations=citations, audit={"model": "offline"}),
        backend.append(conv, "Taking over", role="agent", author_id=42, author_label="Sam (staff)"),
        backend.append(conv, "An internal note", role="note", author_id=42),
        backend.append(conv, "Rated 5/5", role="system"),
    ]
    assert all(created for _, created in sent)
    messages = [m for m, _ in sent]
    assert [m.seq for m in messages] == [1, 2, 3, 4, 5]
    assert backend.after(conv, 0) == messages
    first, ai, agent = messages[0], messages[1], messages[2]
    assert (first.role, first.text, first.client_id, first.conversation_id) == (
        "visitor",
        "Hello, I need help",
        "c-1",
        conv,
    )
    assert (ai.citations, ai.audit, ai.client_id) == (citations, {"model": "offline"}, None)
    assert (agent.author_id, agent.author_label) == (42, "Sam (staff)")
    assert all(m.created_at.tzinfo is not None and m.created_at.utcoffset() is not None for m in messages)
    assert [m.created_at for m in messages] == sorted(m.created_at for m in messages)
    assert ai.frame()["citations"] == citations


def test_concurrent_writers_get_gap_free_seq(backend: Backend) -> None:
    conv = backend.conversation()
    results = backend.threads(THREADS, lambda i: [_append_seq(backend, conv, f"w{i} m{n}") for n in range(PER_THREAD)])
    seqs = sorted(s for r in results for s in r)
    assert seqs == list(range(1, THREADS * PER_THREAD + 1))
    assert all(r == sorted(r) for r in results), "a writer's own messages are numbered in the order it wrote them"
    stored = backend.after(conv, 0, limit=1000)
    assert [m.seq for m in stored] == seqs
    assert {m.text for m in stored} == {f"w{i} m{n}" for i in range(THREADS) for n in range(PER_THREAD)}
    assert backend.last_seq(conv) == THREADS * PER_THREAD


def _append_seq(backend: Backend, conv: int, text: str, **kw: Any) -> int:
    """One append from a writer thread (inside alpha's schema, where `threads` runs them)."""
    message, created = backend.store.append(
        schema=backend.schemas[0], conversation_id=conv, role="visitor", text=text, **kw
    )
    assert created
    return message.seq


def test_repeated_client_id_returns_the_stored_message(backend: Backend) -> None:
    conv, other = backend.conversation(), backend.conversation()
    first, created = backend.append(conv, "Where is my order?", client_id="retry-me")
    assert created and first.seq == 1
    again, created = backend.append(conv, "Where is my order? (sent twice)", client_id="retry-me")
    assert not created
    assert again == first
    nxt, created = backend.append(conv, "Order 1234", client_id="next")
    assert created and nxt.seq == 2, "a duplicate does not consume a seq"
    # No client_id (or an empty one) never deduplicates; a client_id is scoped to its conversation.
    assert backend.append(conv, "same text", client_id=None)[0].seq == 3
    assert backend.append(conv, "same text", client_id="")[0].seq == 4
    elsewhere, created = backend.append(other, "Where is my order?", client_id="retry-me")
    assert created and elsewhere.seq == 1
    assert [m.text for m in backend.after(conv, 0)] == ["Where is my order?", "Order 1234", "same text", "same text"]


def test_concurrent_duplicates_store_one_message(backend: Backend) -> None:
    conv = backend.conversation()

    def work(i: int) -> list[tuple[StoredMessage, bool]]:
        schema = backend.schemas[0]
        results = []
        for client_id in ("shared", f"own-{i}"):
            results.append(
                backend.store.append(
                    schema=schema,
                    conversation_id=conv,
                    role="visitor",
                    text=f"{client_id} from {i}",
                    client_id=client_id,
                )
            )
        return results

    results = backend.threads(THREADS, work)
    shared = [r[0] for r in results]
    assert sum(created for _, created in shared) == 1
    assert len({(m.seq, m.text, m.created_at) for m, _ in shared}) == 1, "every duplicate gets the stored message"
    stored = backend.after(conv, 0)
    assert [m.seq for m in stored] == list(range(1, THREADS + 2))
    assert sorted(m.client_id or "" for m in stored) == sorted(["shared", *(f"own-{i}" for i in range(THREADS))])
    assert all(created for r in results for _, created in r[1:])


def test_after_replays_in_order_with_a_limit(backend: Backend) -> None:
    conv = backend.conversation()
    for n in range(1, 13):
        backend.append(conv, f"message {n}")
    assert [m.seq for m in backend.after(conv, 0, limit=5)] == [1, 2, 3, 4, 5]
    assert [m.seq for m in backend.after(conv, 5, limit=5)] == [6, 7, 8, 9, 10]
    assert [m.seq for m in backend.after(conv, 10, limit=5)] == [11, 12]
    assert backend.after(conv, 12) == []
    assert backend.after(conv, 0, limit=0) == []
    assert [m.text for m in backend.after(conv, 11)] == ["message 12"]


def test_before_pages_back_to_the_start(backend: Backend) -> None:
    conv = backend.conversation()
    for n in range(1, 24):
        backend.append(conv, f"message {n}")
    pages, cursor = [], None
    while True:
        page = backend.before(conv, cursor, limit=10)
        if not page:
            break
        pages.append([m.seq for m in page])
        cursor = page[0].seq
    assert pages == [list(range(14, 24)), list(range(4, 14)), [1, 2, 3]]
    assert [m.seq for m in backend.before(conv, None, limit=3)] == [21, 22, 23]
    assert backend.before(conv, 1) == []


def test_last_seq(backend: Backend) -> None:
    conv = backend.conversation()
    assert backend.last_seq(conv) == 0
    for n in range(3):
        backend.append(conv, f"message {n}")
    assert backend.last_seq(conv) == 3
    backend.append(conv, "duplicate", client_id="x")
    backend.append(conv, "duplicate", client_id="x")
    assert backend.last_seq(conv) == 4


def test_delete_conversation_removes_only_that_conversation(backend: Backend) -> None:
    doomed, kept = backend.conversation(), backend.conversation()
    for n in range(4):
        backend.append(doomed, f"doomed {n}", client_id=f"c{n}")
        backend.append(kept, f"kept {n}", client_id=f"c{n}")
    assert backend.delete(doomed) == 4
    assert backend.after(doomed, 0) == []
    assert backend.last_seq(doomed) == 0
    assert [m.text for m in backend.after(kept, 0)] == [f"kept {n}" for n in range(4)]
    assert backend.delete(doomed) == 0


def test_tenants_never_see_each_others_messages(backend: Backend) -> None:
    """The same conversation id in alpha's and beta's schema (postgres) or database (mongodb)."""
    alpha, beta = backend.schemas
    conv = backend.conversation(alpha, pk=_free_id(backend))
    assert backend.conversation(beta, pk=conv) == conv
    for n in range(3):
        backend.append(conv, f"canary-alpha {n}", schema=alpha, client_id=f"c{n}")
    first_beta, created = backend.append(conv, "canary-beta 0", schema=beta, client_id="c0")
    assert created and first_beta.seq == 1, "alpha's client_id and seq mean nothing in beta"
    assert [m.text for m in backend.after(conv, 0, schema=beta)] == ["canary-beta 0"]
    assert [m.text for m in backend.before(conv, None, schema=beta)] == ["canary-beta 0"]
    assert backend.last_seq(conv, schema=beta) == 1
    assert [m.text for m in backend.after(conv, 0, schema=alpha)] == [f"canary-alpha {n}" for n in range(3)]
    assert backend.delete(conv, schema=beta) == 1
    assert backend.last_seq(conv, schema=alpha) == 3


def test_large_and_unicode_texts_round_trip(backend: Backend) -> None:
    conv = backend.conversation()
    sample = "héllo wörld — 你好，世界 · привет · שלום עולם · مرحبا · e\u0301 · 👋🏽 👨‍👩‍👧‍👦 · \u2028tab\tend\n"
    texts = [
        sample,
        sample * 4000,  # ~300 KB of mixed scripts
        "x" * 1_000_000,
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 outside the BMP: 𐍈 🀄",
    ]
    citations = [{"title": "Retours — politique 📦", "quote": "30 jours", "score": 0.5}]
    sent = [backend.append(conv, text, citations=citations, author_label="Zoë")[0] for text in texts]
    back = backend.after(conv, 0)
    assert back == sent
    assert [m.text for m in back] == texts
    assert back[0].citations == citations and back[0].author_label == "Zoë"


def test_postgres_append_survives_a_stale_counter_saved_while_it_waited(alpha: Any, beta: Any) -> None:
    """The seq counter is raised in the statement that takes the conversation's lock. A writer
    that saves the conversation from a stale copy (counter 5 after message 6 was appended) while
    an append waits for the lock hands that append a counter its snapshot cannot correct: the
    append retries with a fresh statement instead of failing, and the seq stays gap-free."""
    from apps.conversations.models import Conversation

    with _postgres((alpha.schema, beta.schema)) as backend:
        conv = backend.conversation()
        for n in range(5):
            backend.append(conv, f"message {n + 1}")
        schema = backend.schemas[0]
        appended, release = threading.Event(), threading.Event()
        results: dict[str, Any] = {}

        def holder() -> None:
            with schema_context(schema), transaction.atomic():
                results["a"] = backend.store.append(schema=schema, conversation_id=conv, role="visitor", text="six")
                appended.set()
                release.wait(timeout=30)

        def stale_writer() -> None:
            appended.wait(timeout=30)
            with schema_context(schema), transaction.atomic():
                Conversation.objects.filter(pk=conv).update(last_seq=5)

        def waiter() -> None:
            appended.wait(timeout=30)
            _wait_for_lock_waiters(1)  # queued behind the stale writer
            with schema_context(schema):
                results["c"] = backend.store.append(schema=schema, conversation_id=conv, role="visitor", text="seven")

        errors: list[BaseException] = []
        threads = [threading.Thread(target=_closing(f, errors)) for f in (holder, stale_writer, waiter)]
        for thread in threads:
            thread.start()
        try:
            _wait_for_lock_waiters(2)
        finally:
            release.set()
            for thread in threads:
                thread.join(timeout=60)
        assert not errors, errors
        assert (results["a"][0].seq, results["c"][0].seq) == (6, 7)
        assert [m.seq for m in backend.after(conv)] == [1, 2, 3, 4, 5, 6, 7]


def _closing(work: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    return run


def _wait_for_lock_waiters(count: int) -> None:
    """Until `count` other backends of this database wait for a lock."""
    import time

    from django.db import connections

    deadline = time.monotonic() + 30
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # the view is cached per transaction
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] >= count:
                return
            time.sleep(0.02)
    raise AssertionError(f"{count} lock waiters never appeared")
