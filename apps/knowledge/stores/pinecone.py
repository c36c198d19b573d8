"""Pinecone store: vectors in Pinecone through the official `pinecone` SDK (REST data plane).

Layout
- One namespace per tenant: `tenant-<schema>`. Chunk ids are only unique inside a tenant's
  schema (each schema has its own sequence), so the namespace is what keeps tenants apart:
  every read and write names it, and a query never crosses it.
- Vector id = the chunk id as a string; metadata `{"knowledge_base_id", "source_id"}`.
  Queries filter `{"knowledge_base_id": {"$in": [...]}}`. Pinecone filters while it
  searches (single-stage), so a selective filter still returns `top_k` matches: no
  post-filter loss. Scores are cosine similarities (the indexes use the cosine metric).
- One index per embedding dimension, because a Pinecone index has exactly one: 384-d
  (`local-minilm`) and 1536-d (`openai-3-small`) vectors go to `f"{PINECONE_INDEX}-{dim}"`
  (default `syntera-384`, `syntera-1536`; dense, metric cosine, created beforehand in the
  Pinecone console or API). The SDK resolves each name to its host once through the
  control plane (`PINECONE_CONTROLLER_HOST`, default Pinecone's) and caches it.
- `PINECONE_INDEX_HOST` skips that lookup and connects to data-plane hosts directly:
  either one host, used for every dimension (then every knowledge base on Pinecone must
  use models of that index's dimension; Pinecone rejects other lengths), or a mapping
  `384=https://a...,1536=https://b...` (a dimension missing from the mapping falls back
  to the index name). Tests point it at the local stand-in this way.

Writes
- Upserts are sent in batches of at most 100 vectors and ~1.5 MB (Pinecone caps a request
  at 1000 vectors and 2 MB), values rounded to float32 precision, which is what Pinecone
  stores. A failed batch raises (after the SDK's own retries on 429/5xx), so the caller's
  transaction rolls back.
- Deleting a workspace (`drop_tenant`) deletes its namespace in every index.
- Deletes go out in batches of 1000 ids (Pinecone's cap) to every index, because a
  chunk's vector lives in the index of the model it was embedded with, which may have
  changed since; ids a namespace does not hold are ignored by Pinecone, and an index that
  does not exist is skipped.

Orphans
Ingestion upserts inside the database transaction that creates the chunk rows; if that
transaction rolls back after the upsert (a crash, a failed later batch), the vectors stay
in Pinecone with ids that no row will ever have (sequences never reuse ids). They are
harmless but would take places in a query's `top_k`, so `query` keeps only ids whose chunk
row exists in the tenant's schema and asks Pinecone again for more when some were dropped.
They are not deleted there: a missing row may also belong to a transaction that has not
committed yet.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from . import VectorHit, VectorRecord

UPSERT_BATCH = 100
UPSERT_BATCH_BYTES = 1_500_000
DELETE_BATCH = 1000
MAX_TOP_K = 10_000
REFILL_ATTEMPTS = 3


def namespace_for(schema: str) -> str:
    return f"tenant-{schema}"


def parse_index_hosts(value: str) -> dict[int | None, str]:
    """`PINECONE_INDEX_HOST`: "" → {}, "host" → {None: host}, "384=h1,1536=h2" → {384: h1, 1536: h2}."""
    value = (value or "").strip()
    if not value:
        return {}
    if "=" not in value:
        return {None: value}
    hosts: dict[int | None, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        dimension, _, host = part.partition("=")
        try:
            hosts[int(dimension.strip())] = host.strip()
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"PINECONE_INDEX_HOST: {part!r} is not '<dimension>=<host>' (e.g. 384=https://...)."
            ) from exc
        if not host.strip():
            raise ImproperlyConfigured(f"PINECONE_INDEX_HOST: no host for dimension {dimension.strip()}.")
    return hosts


def _batch_size(dimension: int) -> int:
    # A value is at most ~16 bytes of JSON at 8 significant digits, plus id and metadata.
    return max(1, min(UPSERT_BATCH, UPSERT_BATCH_BYTES // (dimension * 16 + 200)))


def _dimensions() -> list[int]:
    from ..embeddings import dimensions_of, provider_names

    return sorted({dimensions_of(name) for name in provider_names()})


class PineconeStore:
    name = "pinecone"

    def __init__(self) -> None:
        api_key = settings.PINECONE_API_KEY
        if not api_key:
            raise ImproperlyConfigured('KNOWLEDGE_VECTOR_STORE="pinecone" needs PINECONE_API_KEY.')
        from pinecone import Pinecone

        self._client = Pinecone(api_key=api_key, host=settings.PINECONE_CONTROLLER_HOST or None, source_tag="syntera")
        self._index_prefix = settings.PINECONE_INDEX
        self._hosts = parse_index_hosts(settings.PINECONE_INDEX_HOST)
        self._indexes: dict[str, Any] = {}
        self._lock = threading.Lock()

    # --- indexes ------------------------------------------------------------------------

    def index_name(self, dimension: int) -> str:
        return f"{self._index_prefix}-{dimension}"

    def _host_for(self, dimension: int) -> str | None:
        return self._hosts.get(dimension) or self._hosts.get(None)

    def _index(self, dimension: int) -> Any:
        """The SDK's `Index` for this dimension (one HTTP connection pool per host)."""
        host = self._host_for(dimension)
        key = host or self.index_name(dimension)
        with self._lock:
            index = self._indexes.get(key)
        if index is None:
            # By name: one describe call to the control plane, then the SDK caches the host.
            index = self._client.index(host=host) if host else self._client.index(name=self.index_name(dimension))
            with self._lock:
                index = self._indexes.setdefault(key, index)
        return index

    @staticmethod
    def _dimension(model: str) -> int:
        from ..embeddings import dimensions_of

        return dimensions_of(model)

    # --- the VectorStore protocol ------------------------------------------------------

    def upsert(self, *, schema: str, model: str, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        dimension = self._dimension(model)
        for record in records:
            if len(record.vector) != dimension:
                raise ValueError(f"chunk {record.chunk_id}: {len(record.vector)}-d vector for a {dimension}-d model")
        index = self._index(dimension)
        namespace = namespace_for(schema)
        size = _batch_size(dimension)
        for start in range(0, len(records), size):
            batch = [
                {
                    "id": str(r.chunk_id),
                    "values": [float(f"{v:.8g}") for v in r.vector],
                    "metadata": {"knowledge_base_id": r.knowledge_base_id, "source_id": r.source_id},
                }
                for r in records[start : start + size]
            ]
            index.upsert(vectors=batch, namespace=namespace)

    def _every_index(self) -> Iterator[Any]:
        """Each index a vector may be in, once (one host may serve every dimension)."""
        from pinecone import NotFoundError

        seen: set[int] = set()
        for dimension in _dimensions():
            try:
                index = self._index(dimension)
            except NotFoundError:
                continue  # no index for this dimension: nothing of it to delete
            if id(index) not in seen:
                seen.add(id(index))
                yield index

    def delete(self, *, schema: str, chunk_ids: Sequence[int]) -> None:
        if not chunk_ids:
            return
        ids = [str(i) for i in dict.fromkeys(chunk_ids)]
        namespace = namespace_for(schema)
        for index in self._every_index():
            for start in range(0, len(ids), DELETE_BATCH):
                index.delete(ids=ids[start : start + DELETE_BATCH], namespace=namespace)

    def drop_tenant(self, *, schema: str) -> None:
        """Delete the tenant's namespace in every index (workspace deletion). A namespace that
        does not exist (never written, or already dropped) has nothing to delete."""
        from pinecone import NotFoundError

        for index in self._every_index():
            with contextlib.suppress(NotFoundError):
                index.delete(delete_all=True, namespace=namespace_for(schema))

    def query(
        self, *, schema: str, model: str, vector: Sequence[float], knowledge_base_ids: Sequence[int], top_k: int
    ) -> list[VectorHit]:
        if not knowledge_base_ids or top_k <= 0:
            return []
        top_k = min(top_k, MAX_TOP_K)
        index = self._index(self._dimension(model))
        values = [float(v) for v in vector]
        query_filter = {"knowledge_base_id": {"$in": [int(i) for i in dict.fromkeys(knowledge_base_ids)]}}
        asked = top_k
        hits: list[VectorHit] = []
        for _attempt in range(REFILL_ATTEMPTS):
            response = index.query(
                vector=values,
                top_k=asked,
                namespace=namespace_for(schema),
                filter=query_filter,
                include_values=False,
                include_metadata=False,
            )
            # ids this store did not write (not chunk ids) are not ours to return
            matches = [(int(m.id), float(m.score)) for m in response.matches if m.id.isdigit()]
            existing = self._existing_chunks(schema, [chunk_id for chunk_id, _ in matches])
            hits = [VectorHit(chunk_id=c, similarity=s) for c, s in matches if c in existing]
            dropped = len(matches) - len(hits)
            if len(hits) >= top_k or len(matches) < asked or asked >= MAX_TOP_K:
                break  # enough, or Pinecone has no more
            asked = min(MAX_TOP_K, asked + max(dropped * 2, top_k))
        return hits[:top_k]

    @staticmethod
    def _existing_chunks(schema: str, chunk_ids: list[int]) -> set[int]:
        """The ids among `chunk_ids` that have a chunk row in the tenant's schema."""
        if not chunk_ids:
            return set()
        from django_tenants.utils import schema_context

        from ..models import Chunk

        if getattr(connection, "schema_name", None) == schema:
            return set(Chunk.objects.filter(pk__in=chunk_ids).values_list("pk", flat=True))
        with schema_context(schema):
            return set(Chunk.objects.filter(pk__in=chunk_ids).values_list("pk", flat=True))
