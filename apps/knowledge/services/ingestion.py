"""The ingestion pipeline (run by the `knowledge.ingest_source` task on the `ingest` queue):
fetch → extract with structure → clean → chunk → embed in batches → index. Each document's
chunks are replaced in one transaction, so a crash leaves either the old chunks or the
new ones, never both; an unchanged document (same content hash) is skipped on re-sync.
Progress is written as it goes so the dashboard and API can show it. Also the beat sweep
that re-queues scheduled and stalled sources. See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.events import types as events
from apps.events.services import emit
from syntera import slots

from .. import embeddings
from ..chunking import chunk_sections
from ..crawl import CrawlLimits, crawl
from ..extractors import Extracted, ExtractionError, Section, extract, kind_for
from ..fetch import fetch
from ..models import Chunk, Document, Source, embedding_input
from ..stores import VectorRecord, get_store
from .common import _sha256
from .sources import _queue

logger = logging.getLogger(__name__)

EMBED_BATCH = 64


class Superseded(Exception):
    """A newer run of the same source started; this one stops quietly."""


def _progress(source_id: int, run: int, value: float) -> None:
    percent = max(0, min(99, int(value * 100)))
    updated = Source.objects.filter(pk=source_id, run=run).update(progress=percent, updated_at=timezone.now())
    if not updated:
        raise Superseded


def _documents_for(source: Source, report: Callable[[float], None]) -> list[tuple[str, str, bytes, Extracted]]:
    """(ref, title, raw bytes, extracted) for every document of the source."""
    max_chars = settings.KNOWLEDGE_MAX_TEXT_CHARS
    if source.type == Source.Type.TEXT:
        data = source.content.encode()
        # Raw text is read as Markdown (a superset of plain text), so its headings count.
        return [("text", source.title, data, extract("markdown", data, max_chars=max_chars))]
    if source.type == Source.Type.FAQ:
        entries = list(source.faq_entries.all())
        data = "\n".join(f"{e.question}\t{e.answer}" for e in entries).encode()
        sections = [
            Section(text=f"Q: {e.question}\nA: {e.answer}", heading=e.question, keep_whole=True, anchor=f"faq={e.pk}")
            for e in entries
        ]
        return [("faq", source.title, data, Extracted(sections=sections, title=source.title))]
    if source.type == Source.Type.FILE:
        with source.file.open("rb") as handle:
            data = handle.read(settings.KNOWLEDGE_MAX_FILE_BYTES + 1)
        if len(data) > settings.KNOWLEDGE_MAX_FILE_BYTES:
            raise ExtractionError("The file is larger than the configured limit.")
        result = extract(source.mime_type, data, max_chars=max_chars, progress=lambda f: report(0.4 * f))
        return [(str(source.file.name).rsplit("/", 1)[-1], result.title or source.title, data, result)]
    if source.config.get("crawl"):
        limits = CrawlLimits(
            max_pages=int(source.config.get("max_pages") or settings.KNOWLEDGE_CRAWL_MAX_PAGES),
            max_depth=int(source.config.get("max_depth") or settings.KNOWLEDGE_CRAWL_MAX_DEPTH),
            max_bytes=settings.KNOWLEDGE_CRAWL_MAX_BYTES,
        )
        documents = []
        for page in crawl(source.url, limits, progress=lambda f: report(0.3 * f)):
            kind = kind_for(page.url.split("?")[0], page.content_type) or "html"
            try:
                result = extract(kind, page.body, max_chars=max_chars, url=page.url)
            except ExtractionError:
                continue  # an empty or unreadable page is skipped, not fatal
            documents.append((page.url, result.title or page.url, page.body, result))
        if not documents:
            raise ExtractionError("No readable page was found at this address.")
        return documents
    page = fetch(source.url)
    kind = kind_for(page.url.split("?")[0], page.content_type) or "html"
    result = extract(kind, page.body, max_chars=max_chars, url=page.url)
    return [(page.url, result.title or source.title, page.body, result)]


def _duration(seconds: int) -> str:
    return f"{seconds // 60}-minute" if seconds % 60 == 0 else f"{seconds}-second"


def ingest_source_when_free(*, source_id: int, run: int) -> str:
    """Run the ingestion when the workspace has a free ingestion slot (at most
    KNOWLEDGE_TENANT_CONCURRENCY at once, held in Redis under the schema's name), else send it
    back to the queue for later: never dropped, and never holding a worker while it waits."""
    if settings.CELERY_TASK_ALWAYS_EAGER or not Source.objects.filter(pk=source_id, run=run).exists():
        # Tasks run inline (nothing could wait in a queue), or the run is gone or superseded.
        return ingest_source(source_id=source_id, run=run)
    schema = connection.schema_name  # type: ignore[attr-defined]
    # A run killed at its hard time limit never releases its slot: the slot lapses just after.
    ttl = settings.KNOWLEDGE_INGEST_TIME_LIMIT + 30
    holder = f"{source_id}:{run}"
    with slots.slot(f"ingest:{schema}", limit=settings.KNOWLEDGE_TENANT_CONCURRENCY, ttl=ttl, holder=holder) as held:
        if held:
            return ingest_source(source_id=source_id, run=run)
    from ..tasks import ingest_source as task

    # Touched, so that the stall sweep sees a source that is waiting, not one that died.
    Source.objects.filter(pk=source_id, run=run).update(updated_at=timezone.now())
    wait = settings.KNOWLEDGE_CONCURRENCY_RETRY_SECONDS
    task.apply_async(
        args=(source_id, run),
        countdown=wait + random.uniform(0, wait),  # noqa: S311 (jitter, not a secret)
        queue="ingest",
        headers={"_schema_name": schema},
    )
    return "deferred"


def ingest_source(*, source_id: int, run: int) -> str:
    """Run one ingestion of a source. Idempotent: safe to run again after any crash."""
    source = Source.objects.select_related("knowledge_base").filter(pk=source_id).first()
    if source is None:
        return "gone"
    if source.run != run:
        return "superseded"
    Source.objects.filter(pk=source_id, run=run).update(
        status=Source.Status.PROCESSING, progress=1, updated_at=timezone.now()
    )
    try:
        documents = _documents_for(source, lambda f: _progress(source_id, run, f))
        total_chunks = _index_documents(source, run, documents)
    except Superseded:
        return "superseded"
    except ExtractionError as exc:
        _fail(source_id, run, str(exc))
        return "failed"
    except SoftTimeLimitExceeded:
        limit = _duration(settings.KNOWLEDGE_INGEST_SOFT_TIME_LIMIT)
        logger.warning("ingestion of source %s stopped at its soft time limit", source_id)
        _fail(
            source_id,
            run,
            f"Processing took longer than its {limit} time limit and was stopped. A site that answers "
            "very slowly, or a very large source, does this: re-sync to try again later, or split the source.",
        )
        return "failed"
    except Exception:
        logger.exception("ingestion of source %s failed", source_id)
        _fail(source_id, run, "Something went wrong while processing this source. Try re-syncing it.")
        return "failed"
    now = timezone.now()
    content_hash = _sha256(b"".join(_sha256(d[2]).encode() for d in documents))
    next_sync = now + timedelta(hours=source.sync_interval_hours) if source.sync_interval_hours else None
    with transaction.atomic():
        finished = Source.objects.filter(pk=source_id, run=run).update(
            status=Source.Status.READY,
            progress=100,
            error="",
            stalls=0,
            chunk_count=total_chunks,
            content_hash=content_hash,
            last_synced_at=now,
            next_sync_at=next_sync,
            updated_at=now,
        )
        if finished:  # (the UPDATE holds the source's row lock: its events stay in order)
            emit(
                events.knowledge_source_ready(
                    source_id=source_id, knowledge_base_id=source.knowledge_base_id, run=run, chunk_count=total_chunks
                ),
                system_label="ingestion",
            )
    return "ready"


def _fail(source_id: int, run: int, reason: str) -> None:
    with transaction.atomic():
        failed = Source.objects.filter(pk=source_id, run=run).update(
            status=Source.Status.FAILED, error=reason[:2000], updated_at=timezone.now()
        )
        knowledge_base_id = Source.objects.filter(pk=source_id).values_list("knowledge_base_id", flat=True).first()
        if failed and knowledge_base_id is not None:
            emit(
                events.knowledge_source_failed(
                    source_id=source_id, knowledge_base_id=knowledge_base_id, run=run, error=reason
                ),
                system_label="ingestion",
            )


def _index_documents(source: Source, run: int, documents: list[tuple[str, str, bytes, Extracted]]) -> int:
    kb = source.knowledge_base
    provider = embeddings.get_provider(kb.embedding_model)
    store = get_store()
    schema = connection.schema_name  # type: ignore[attr-defined]
    keep_refs = {ref for ref, *_ in documents}
    stale = list(source.documents.exclude(ref__in=keep_refs))
    if stale:
        with transaction.atomic():
            ids = list(Chunk.objects.filter(document__in=stale).values_list("id", flat=True))
            Document.objects.filter(pk__in=[d.pk for d in stale]).delete()
        store.delete(schema=schema, chunk_ids=ids)
    for number, (ref, title, data, extracted) in enumerate(documents):
        # The title is embedded with every chunk: a renamed document is indexed again.
        context = " ".join((title or source.title or "").split())[:300]
        digest = _sha256(data + b"\0" + context.encode())
        existing = source.documents.filter(ref=ref).first()
        if existing is not None and existing.content_hash == digest and existing.chunks.exists():
            continue  # unchanged since the last sync
        drafts = chunk_sections(
            extracted.sections, max_tokens=settings.KNOWLEDGE_CHUNK_TOKENS, overlap=settings.KNOWLEDGE_CHUNK_OVERLAP
        )
        vectors: list[list[float]] = []
        for start in range(0, len(drafts), EMBED_BATCH):
            batch = drafts[start : start + EMBED_BATCH]
            vectors.extend(provider.embed([embedding_input(context, d.text) for d in batch]))
            share = (number + (start + len(batch)) / max(1, len(drafts))) / len(documents)
            _progress(source.pk, run, 0.4 + 0.55 * share)
        with transaction.atomic():
            # Lock the source row: a newer run (or a delete) waits for us, or we see it and stop.
            if not Source.objects.select_for_update().filter(pk=source.pk, run=run).exists():
                raise Superseded
            old_ids = list(
                Chunk.objects.filter(document__source=source, document__ref=ref).values_list("id", flat=True)
            )
            Document.objects.filter(source=source, ref=ref).delete()
            document = Document.objects.create(
                source=source, ref=ref[:2000], title=(title or "")[:300], content_hash=digest
            )
            chunks = Chunk.objects.bulk_create(
                [
                    Chunk(
                        knowledge_base=kb,
                        source=source,
                        document=document,
                        ordinal=i,
                        text=d.text,
                        heading=d.heading[:500],
                        context=context,
                        anchor=d.anchor[:2000],
                        page=d.page,
                        token_count=d.token_count,
                    )
                    for i, d in enumerate(drafts)
                ]
            )
            store.upsert(
                schema=schema,
                model=kb.embedding_model,
                records=[
                    VectorRecord(chunk_id=c.pk, knowledge_base_id=kb.pk, source_id=source.pk, vector=v)
                    for c, v in zip(chunks, vectors, strict=True)
                ],
            )
        if old_ids:
            store.delete(schema=schema, chunk_ids=old_ids)
    return Chunk.objects.filter(source=source).count()


def sources_due() -> list[tuple[int, int]]:
    """Sources to (re)queue now: scheduled re-syncs that are due (the next one is scheduled at
    once, so a failing source is tried once per interval, not at every sweep), and stalled
    runs (still "processing"/"queued" with no progress for KNOWLEDGE_STALL_SECONDS). A run
    that started and died (its worker killed, its hard time limit) counts: at
    KNOWLEDGE_MAX_STALLS in a row the source is failed instead. One that never started is
    queued again without counting."""
    now = timezone.now()
    stalled_before = now - timedelta(seconds=settings.KNOWLEDGE_STALL_SECONDS)
    due = []
    for source in Source.objects.filter(next_sync_at__lte=now).exclude(status__in=["queued", "processing"]):
        with transaction.atomic():
            source.next_sync_at = (
                now + timedelta(hours=source.sync_interval_hours) if source.sync_interval_hours else None
            )
            source.save(update_fields=["next_sync_at"])
            _queue(source)
        due.append((source.pk, source.run))
    for source in Source.objects.filter(status__in=["queued", "processing"], updated_at__lt=stalled_before):
        with transaction.atomic():
            if source.status == Source.Status.QUEUED:
                # Never started (a backlog, a lost message): queued again, not counted.
                _queue(source, stalls=source.stalls)
                due.append((source.pk, source.run))
                continue
            if source.stalls + 1 >= settings.KNOWLEDGE_MAX_STALLS:
                logger.warning("source %s stalled %d times; marked failed", source.pk, source.stalls + 1)
                _fail(
                    source.pk,
                    source.run,
                    f"Processing stopped {source.stalls + 1} times without finishing: the worker running it "
                    "was stopped or ran out of time. It is not retried automatically; re-sync it to try again, "
                    "or split it into smaller sources.",
                )
                continue
            _queue(source, stalls=source.stalls + 1)
        due.append((source.pk, source.run))
    return due
