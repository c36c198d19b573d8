"""The document title on every chunk (`Chunk.context`), embedded with the chunk's text and
indexed for full text with the heading (weight A), so a passage that never names its subject
is still found by it. Existing chunks get their document's (or source's) title; their vectors
keep what they were embedded from until the source is synced again (the document hash now
covers the title, so that sync embeds them anew).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0003_chunk_embedding_cover")]

    operations = [
        migrations.AddField(
            model_name="chunk",
            name="context",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.RunSQL(
            """
            UPDATE knowledge_chunk c SET context = left(coalesce(nullif(d.title, ''), s.title, ''), 300)
            FROM knowledge_document d, knowledge_source s
            WHERE d.id = c.document_id AND s.id = c.source_id;
            DROP INDEX IF EXISTS knowledge_chunk_search_gin;
            ALTER TABLE knowledge_chunk DROP COLUMN IF EXISTS search;
            ALTER TABLE knowledge_chunk ADD COLUMN search tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english'::regconfig, coalesce(context, '')), 'A') ||
                setweight(to_tsvector('english'::regconfig, coalesce(heading, '')), 'A') ||
                setweight(to_tsvector('english'::regconfig, coalesce(text, '')), 'B')
            ) STORED;
            CREATE INDEX knowledge_chunk_search_gin ON knowledge_chunk USING gin (search);
            """,
            reverse_sql="""
            DROP INDEX IF EXISTS knowledge_chunk_search_gin;
            ALTER TABLE knowledge_chunk DROP COLUMN IF EXISTS search;
            ALTER TABLE knowledge_chunk ADD COLUMN search tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english'::regconfig, coalesce(heading, '')), 'A') ||
                setweight(to_tsvector('english'::regconfig, coalesce(text, '')), 'B')
            ) STORED;
            CREATE INDEX knowledge_chunk_search_gin ON knowledge_chunk USING gin (search);
            """,
        ),
    ]
