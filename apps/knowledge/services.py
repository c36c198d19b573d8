"""Writes to knowledge: knowledge bases, sources, FAQ entries, and the ingestion pipeline.

Ingestion (run by the `knowledge.ingest_source` task on the `ingest` queue):
fetch → extract with structure → clean → chunk → embed in batches → index. Each document's
chunks are replaced in one transaction, so a crash leaves either the old chunks or the
new ones, never both; an unchanged document (same content hash) is skipped on re-sync.
Progress is written as it goes so the dashboard and API can show it.
See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action
from apps.events import types as events
from apps.events.services import emit
from syntera import slots
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit

from . import embeddings
from .chunking import chunk_sections
from .crawl import CrawlLimits, crawl
from .extractors import ACCEPTED_EXTENSIONS, Extracted, ExtractionError, Section, extract, kind_for
from .extractors.csvfile import faq_pairs
from .fetch import check_url, fetch
from .models import Chunk, Document, FAQEntry, KnowledgeBase, Source, embedding_input
from .stores import VectorRecord, get_store

logger = logging.getLogger(__name__)

EMBED_BATCH = 64


def _require_admin(editor: Actor) -> None:
    if not editor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins change knowledge.", code="permission_denied", status_code=403)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- knowledge bases --------------------------------------------------------------------


def _validate_kb(name: str | None, embedding_model: str | None) -> None:
    if name is not None and (not name.strip() or len(name) > 120):
        raise ApplicationError("Name is required (at most 120 characters).", fields={"name": ["Required."]})
    if embedding_model is not None and embedding_model not in embeddings.provider_names():
        raise ApplicationError(
            f"Unknown embedding model {embedding_model!r}.",
            fields={"embedding_model": [f"Choose one of: {', '.join(embeddings.provider_names())}."]},
        )


@transaction.atomic
def knowledge_base_create(
    *, editor: Actor, name: str, description: str = "", embedding_model: str = "local-minilm"
) -> KnowledgeBase:
    _require_admin(editor)
    _validate_kb(name, embedding_model)
    kb = KnowledgeBase.objects.create(
        name=name.strip(), description=description, embedding_model=embedding_model, created_by=editor.user
    )
    audit_action(editor, "knowledge_base.created", kb, {"name": kb.name})
    return kb


@transaction.atomic
def knowledge_base_update(*, editor: Actor, kb: KnowledgeBase, **changes: Any) -> KnowledgeBase:
    """Rename, describe, retune weights, or change the embedding model (which re-embeds)."""
    _require_admin(editor)
    _validate_kb(changes.get("name"), changes.get("embedding_model"))
    for weight in ("dense_weight", "lexical_weight"):
        if weight in changes and not 0 <= float(changes[weight]) <= 10:
            raise ApplicationError("Weights are between 0 and 10.", fields={weight: ["Between 0 and 10."]})
    model_changed = "embedding_model" in changes and changes["embedding_model"] != kb.embedding_model
    for field, value in changes.items():
        setattr(kb, field, value.strip() if isinstance(value, str) and field == "name" else value)
    kb.save()
    if model_changed:
        for source in kb.sources.all():
            _queue(source, force=True)
    audit_action(editor, "knowledge_base.updated", kb, {k: str(v) for k, v in changes.items()})
    return kb


@transaction.atomic
def knowledge_base_delete(*, editor: Actor, kb: KnowledgeBase) -> None:
    _require_admin(editor)
    chunk_ids = list(Chunk.objects.filter(knowledge_base=kb).values_list("id", flat=True))
    files = [str(s.file.name) for s in kb.sources.exclude(file="")]
    audit_action(editor, "knowledge_base.deleted", kb, {"name": kb.name, "chunks": len(chunk_ids)})
    kb.delete()
    _after_delete(chunk_ids, files)


def _after_delete(chunk_ids: list[int], files: list[str]) -> None:
    schema = connection.schema_name  # type: ignore[attr-defined]

    def cleanup() -> None:
        from django.core.files.storage import default_storage

        get_store().delete(schema=schema, chunk_ids=chunk_ids)
        for name in files:
            default_storage.delete(name)

    # robust: the rows are gone already; a store outage must not turn that into an error
    # (leftover vectors are never shown: search drops hits whose chunk row is missing).
    transaction.on_commit(cleanup, robust=True)


# --- sources ----------------------------------------------------------------------------


def _queue(source: Source, *, force: bool = False, stalls: int = 0) -> None:
    """Mark queued and send to the ingest queue after commit. `force` re-embeds unchanged docs;
    `stalls` is the count of stalled runs in a row (the beat sweep's business; 0 otherwise)."""
    from .tasks import ingest_source

    source.run += 1
    source.status = Source.Status.QUEUED
    source.progress = 0
    source.error = ""
    source.stalls = stalls
    if force:
        source.content_hash = ""
        source.documents.update(content_hash="")
    source.save(update_fields=["run", "status", "progress", "error", "content_hash", "stalls", "updated_at"])
    enqueue_on_commit(ingest_source, source.pk, source.run, queue="ingest")


def _clean_interval(hours: int | None) -> int | None:
    if hours in (None, 0):
        return None
    if not 1 <= int(hours) <= 24 * 365:
        raise ApplicationError("Sync interval is 1 hour to 1 year.", fields={"sync_interval_hours": ["1 to 8760."]})
    return int(hours)


@transaction.atomic
def source_add_file(*, editor: Actor, kb: KnowledgeBase, upload: UploadedFile, title: str = "") -> Source:
    _require_admin(editor)
    name = upload.name or "upload"
    kind = kind_for(name, upload.content_type or "")
    if kind is None:
        raise ApplicationError(
            f"Unsupported file type. Accepted: {', '.join(ACCEPTED_EXTENSIONS)}.",
            code="unsupported_media_type",
            status_code=415,
            fields={"file": [f"Accepted: {', '.join(ACCEPTED_EXTENSIONS)}."]},
        )
    if upload.size is not None and upload.size > settings.KNOWLEDGE_MAX_FILE_BYTES:
        raise ApplicationError(
            f"The file is larger than {settings.KNOWLEDGE_MAX_FILE_BYTES // (1024 * 1024)} MB.",
            code="file_too_large",
            status_code=413,
        )
    source = Source(
        knowledge_base=kb,
        type=Source.Type.FILE,
        title=(title or name)[:300],
        mime_type=kind,
        size_bytes=upload.size or 0,
        created_by=editor.user,
    )
    source.save()
    source.file.save(name.replace("/", "_")[-200:], upload, save=True)
    _queue(source)
    audit_action(editor, "source.created", source, {"type": "file", "title": source.title})
    return source


@transaction.atomic
def source_add_text(*, editor: Actor, kb: KnowledgeBase, text: str, title: str = "") -> Source:
    _require_admin(editor)
    if not text or not text.strip():
        raise ApplicationError("Text is required.", fields={"text": ["Required."]})
    if len(text) > settings.KNOWLEDGE_MAX_TEXT_CHARS:
        raise ApplicationError("The text is too long.", code="text_too_long", status_code=413)
    source = Source.objects.create(
        knowledge_base=kb,
        type=Source.Type.TEXT,
        title=(title or text.strip()[:80])[:300],
        content=text,
        size_bytes=len(text.encode()),
        created_by=editor.user,
    )
    _queue(source)
    audit_action(editor, "source.created", source, {"type": "text", "title": source.title})
    return source


@transaction.atomic
def source_add_url(
    *,
    editor: Actor,
    kb: KnowledgeBase,
    url: str,
    title: str = "",
    crawl: bool = False,
    max_pages: int | None = None,
    sync_interval_hours: int | None = None,
) -> Source:
    _require_admin(editor)
    try:
        check_url(url)
    except ExtractionError as exc:
        raise ApplicationError(str(exc), code="url_refused", fields={"url": [str(exc)]}) from exc
    pages = min(max_pages or settings.KNOWLEDGE_CRAWL_MAX_PAGES, settings.KNOWLEDGE_CRAWL_MAX_PAGES)
    source = Source.objects.create(
        knowledge_base=kb,
        type=Source.Type.URL,
        title=(title or url)[:300],
        url=url,
        config={"crawl": bool(crawl), "max_pages": pages, "max_depth": settings.KNOWLEDGE_CRAWL_MAX_DEPTH},
        sync_interval_hours=_clean_interval(sync_interval_hours),
        created_by=editor.user,
    )
    _queue(source)
    audit_action(editor, "source.created", source, {"type": "url", "url": url})
    return source


def _clean_faq(entries: Sequence[dict[str, str]]) -> list[tuple[str, str]]:
    pairs = []
    for number, entry in enumerate(entries, start=1):
        question = str(entry.get("question", "")).strip()
        answer = str(entry.get("answer", "")).strip()
        if not question or not answer:
            raise ApplicationError(
                f"Entry {number} needs a question and an answer.",
                fields={"entries": [f"Entry {number}: question and answer are required."]},
            )
        if len(question) > 1000 or len(answer) > 20000:
            raise ApplicationError(f"Entry {number} is too long.", fields={"entries": [f"Entry {number} is too long."]})
        pairs.append((question, answer))
    if not pairs:
        raise ApplicationError("Add at least one question and answer.", fields={"entries": ["Required."]})
    if len(pairs) > 5000:
        raise ApplicationError("At most 5000 entries per FAQ source.", fields={"entries": ["At most 5000."]})
    return pairs


@transaction.atomic
def source_add_faq(
    *,
    editor: Actor,
    kb: KnowledgeBase,
    entries: Sequence[dict[str, str]] | None = None,
    csv_data: bytes | None = None,
    title: str = "FAQ",
) -> Source:
    _require_admin(editor)
    if csv_data is not None:
        try:
            pairs = faq_pairs(csv_data, max_chars=settings.KNOWLEDGE_MAX_TEXT_CHARS)
        except ExtractionError as exc:
            raise ApplicationError(str(exc), fields={"file": [str(exc)]}) from exc
        pairs = _clean_faq([{"question": q, "answer": a} for q, a in pairs])
    else:
        pairs = _clean_faq(entries or [])
    source = Source.objects.create(
        knowledge_base=kb, type=Source.Type.FAQ, title=(title or "FAQ")[:300], created_by=editor.user
    )
    FAQEntry.objects.bulk_create(
        [FAQEntry(source=source, question=q, answer=a, position=i) for i, (q, a) in enumerate(pairs)]
    )
    _queue(source)
    audit_action(editor, "source.created", source, {"type": "faq", "entries": len(pairs)})
    return source


@transaction.atomic
def faq_replace_entries(*, editor: Actor, source: Source, entries: Sequence[dict[str, str]]) -> Source:
    """Edit an FAQ source: its entries become exactly `entries`, then it is re-indexed."""
    _require_admin(editor)
    if source.type != Source.Type.FAQ:
        raise ApplicationError("Only FAQ sources have entries.", code="not_faq")
    pairs = _clean_faq(entries)
    source.faq_entries.all().delete()
    FAQEntry.objects.bulk_create(
        [FAQEntry(source=source, question=q, answer=a, position=i) for i, (q, a) in enumerate(pairs)]
    )
    _queue(source)
    audit_action(editor, "source.updated", source, {"entries": len(pairs)})
    return source


@transaction.atomic
def source_update(
    *, editor: Actor, source: Source, title: str | None = None, sync_interval_hours: int | str | None = "unchanged"
) -> Source:
    _require_admin(editor)
    retitled = False
    if title is not None:
        if not title.strip():
            raise ApplicationError("Title cannot be empty.", fields={"title": ["Required."]})
        retitled = title.strip()[:300] != source.title
        source.title = title.strip()[:300]
    if sync_interval_hours != "unchanged":
        source.sync_interval_hours = _clean_interval(sync_interval_hours)  # type: ignore[arg-type]
        source.next_sync_at = (
            timezone.now() + timedelta(hours=source.sync_interval_hours) if source.sync_interval_hours else None
        )
    source.save()
    if retitled:
        _queue(source)  # chunks that take their context from the source's title are indexed again
    audit_action(editor, "source.updated", source, {"title": source.title})
    return source


@transaction.atomic
def source_resync(*, editor: Actor | None, source: Source) -> Source:
    if editor is not None:
        _require_admin(editor)
    source = Source.objects.select_for_update().get(pk=source.pk)
    _queue(source)
    if editor is not None:
        audit_action(editor, "source.resync", source, {"title": source.title})
    return source


@transaction.atomic
def source_delete(*, editor: Actor, source: Source) -> None:
    """Delete a source with its documents, chunks, vectors (every store) and stored file."""
    _require_admin(editor)
    chunk_ids = list(source.chunks.values_list("id", flat=True))
    files = [str(source.file.name)] if source.file else []
    audit_action(editor, "source.deleted", source, {"title": source.title, "chunks": len(chunk_ids)})
    source.delete()
    _after_delete(chunk_ids, files)


# --- ingestion --------------------------------------------------------------------------


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
    from .tasks import ingest_source as task

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
