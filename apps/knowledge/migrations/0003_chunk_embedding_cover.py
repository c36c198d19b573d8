"""Exact vector search without reading the chunk rows: a covering index on (knowledge base)
with the chunk id and its 384-d vector, so searching one knowledge base exactly is an
index-only scan over that knowledge base's entries (the rows are wide and their vectors are
TOASTed, so a heap scan reads about four pages per candidate). 1536-d vectors do not fit in a
B-tree entry (at most ~2.7 kB); their exact searches read the rows.

Index-only scans need the visibility map to be current: autovacuum visits the table after 2 %
new or 5 % changed rows instead of PostgreSQL's 20 %. Kept out of the model, like the tsvector
of 0002: it serves one raw query of `apps.knowledge.stores.pgvector`, never the ORM.
Measured in docs/benchmarks.md ("Knowledge").
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0002_chunk_search_vector")]

    operations = [
        migrations.RunSQL(
            """
            CREATE INDEX IF NOT EXISTS chunk_embedding_kb_cover ON knowledge_chunk
                (knowledge_base_id) INCLUDE (id, embedding) WHERE embedding IS NOT NULL;
            ALTER TABLE knowledge_chunk SET (
                autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05
            );
            """,
            reverse_sql="""
            DROP INDEX IF EXISTS chunk_embedding_kb_cover;
            ALTER TABLE knowledge_chunk RESET (autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_scale_factor);
            """,
        ),
    ]
