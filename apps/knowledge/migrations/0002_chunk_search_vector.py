"""Full-text side of hybrid retrieval: a generated tsvector over heading + text, GIN-indexed.

Kept out of the Django model on purpose: it is written by PostgreSQL, read only by the
lexical search SQL in `apps.knowledge.stores.pgvector`.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [
        migrations.RunSQL(
            """
            ALTER TABLE knowledge_chunk ADD COLUMN search tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english'::regconfig, coalesce(heading, '')), 'A') ||
                setweight(to_tsvector('english'::regconfig, coalesce(text, '')), 'B')
            ) STORED;
            CREATE INDEX knowledge_chunk_search_gin ON knowledge_chunk USING gin (search);
            """,
            reverse_sql="""
            DROP INDEX IF EXISTS knowledge_chunk_search_gin;
            ALTER TABLE knowledge_chunk DROP COLUMN IF EXISTS search;
            """,
        ),
    ]
