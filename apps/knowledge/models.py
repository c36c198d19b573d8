"""Knowledge bases, their sources, documents and chunks (tenant schema).

A source is what an admin adds (a file, a URL, raw text, a set of FAQ entries); ingestion
turns it into documents (one per file/page) and documents into chunks with embeddings.
Written only through `apps.knowledge.services`. See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from pgvector.django import HnswIndex, VectorField


def source_upload_path(instance: Source, filename: str) -> str:
    """Files live under the tenant's schema name, so tenants never share a path."""
    from django.db import connection

    schema = getattr(connection, "schema_name", "public")
    return f"tenants/{schema}/knowledge/{instance.knowledge_base_id}/{filename}"


class KnowledgeBase(models.Model):
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    embedding_model = models.CharField(max_length=64, default="local-minilm")
    # Retrieval tuning: weights of the dense and lexical rankings in the fusion.
    dense_weight = models.FloatField(default=1.0)
    lexical_weight = models.FloatField(default=1.0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Source(models.Model):
    class Type(models.TextChoices):
        FILE = "file", "File"
        URL = "url", "URL"
        TEXT = "text", "Text"
        FAQ = "faq", "FAQ"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="sources")
    type = models.CharField(max_length=8, choices=Type.choices)
    title = models.CharField(max_length=300, blank=True)
    url = models.URLField(max_length=2000, blank=True)
    file = models.FileField(upload_to=source_upload_path, max_length=500, blank=True)
    mime_type = models.CharField(max_length=120, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    content = models.TextField(blank=True)  # raw text sources
    config = models.JSONField(default=dict, blank=True)  # crawl limits and the like
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True)
    sync_interval_hours = models.PositiveIntegerField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    next_sync_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Incremented for every ingestion run; a run that finds a newer one running gives way.
    run = models.PositiveIntegerField(default=0)
    # Runs in a row that stalled (their worker died or hit its hard time limit) and were queued
    # again by the beat sweep; at KNOWLEDGE_MAX_STALLS the source fails instead.
    stalls = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title or f"{self.type} #{self.pk}"


class FAQEntry(models.Model):
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="faq_entries")
    question = models.CharField(max_length=1000)
    answer = models.TextField(max_length=20000)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.question[:80]


class Document(models.Model):
    """One file, page or text of a source; its hash lets a re-sync skip it when unchanged."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="documents")
    ref = models.CharField(max_length=2000)  # URL, file name or "text"
    title = models.CharField(max_length=300, blank=True)
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["source", "ref"], name="uniq_document_ref")]

    def __str__(self) -> str:
        return self.title or self.ref


class Chunk(models.Model):
    """A retrievable passage. `embedding` holds 384-d vectors (local model),
    `embedding_1536` 1536-d ones (OpenAI); a generated `search` tsvector column and its GIN
    index (added in migration SQL) serve full-text search. `context` is the title of the
    chunk's document: it is embedded with the text (`embedding_input`) and indexed with it, so
    a passage that never names its subject ("You can apply online") is still found by it."""

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="chunks")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="chunks")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading = models.CharField(max_length=500, blank=True)
    context = models.CharField(max_length=300, blank=True)  # the document's title
    anchor = models.CharField(max_length=2000, blank=True)  # URL#fragment, "page=3", ...
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    embedding = VectorField(dimensions=384, null=True, blank=True)
    embedding_1536 = VectorField(dimensions=1536, null=True, blank=True)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="uniq_chunk_ordinal")]
        indexes = [
            models.Index(fields=["knowledge_base", "source"]),
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            HnswIndex(
                name="chunk_embedding_1536_hnsw",
                fields=["embedding_1536"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


def embedding_input(context: str, text: str) -> str:
    """What is embedded for a chunk: its document's title, then its text."""
    context = " ".join((context or "").split())
    return f"{context}\n{text}" if context and not text.startswith(context) else text
