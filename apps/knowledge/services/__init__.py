"""Writes to knowledge: knowledge bases, sources, FAQ entries, and the ingestion pipeline.

One module per concern; this package is the surface other apps import:

- `knowledge_bases`: create, update, delete knowledge bases;
- `sources`: add, edit, re-sync and delete sources and FAQ entries (each change that needs
  new chunks queues an ingestion run after commit);
- `ingestion`: fetch → extract → chunk → embed → index, run by the `knowledge.ingest_source`
  task, and the beat sweep of due and stalled sources;
- `common`: the checks and clean-up they share.

See docs/subsystems/knowledge.md.
"""

from .ingestion import EMBED_BATCH, Superseded, ingest_source, ingest_source_when_free, sources_due
from .knowledge_bases import knowledge_base_create, knowledge_base_delete, knowledge_base_update
from .sources import (
    faq_replace_entries,
    source_add_faq,
    source_add_file,
    source_add_text,
    source_add_url,
    source_delete,
    source_resync,
    source_update,
)

__all__ = [
    "EMBED_BATCH",
    "Superseded",
    "faq_replace_entries",
    "ingest_source",
    "ingest_source_when_free",
    "knowledge_base_create",
    "knowledge_base_delete",
    "knowledge_base_update",
    "source_add_faq",
    "source_add_file",
    "source_add_text",
    "source_add_url",
    "source_delete",
    "source_resync",
    "source_update",
    "sources_due",
]
