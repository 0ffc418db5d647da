"""Full-text search index on PostgreSQL (SQLite searches with a plain match instead).

The expression matches `SearchVector("content", config="simple")` in
`messaging.selectors.search_messages`, so the planner can use the index.
"""

from django.db import migrations

INDEX = "messaging_message_content_fts"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON messaging_message "
            "USING gin (to_tsvector('simple'::regconfig, COALESCE(content, '')))"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("messaging", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
