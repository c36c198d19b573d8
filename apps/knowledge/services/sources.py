"""Sources of a knowledge base (file, text, URL or crawl, FAQ): add, edit, re-sync, delete.

Every change that needs new chunks queues an ingestion run after commit (`_queue`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from apps.accounts.services import Actor
from apps.audit.services import audit_action
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit

from ..extractors import ACCEPTED_EXTENSIONS, ExtractionError, kind_for
from ..extractors.csvfile import faq_pairs
from ..fetch import check_url
from ..models import FAQEntry, KnowledgeBase, Source
from .common import _after_delete, _require_admin


def _queue(source: Source, *, force: bool = False, stalls: int = 0) -> None:
    """Mark queued and send to the ingest queue after commit. `force` re-embeds unchanged docs;
    `stalls` is the count of stalled runs in a row (the beat sweep's business; 0 otherwise)."""
    from ..tasks import ingest_source

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
