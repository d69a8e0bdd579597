"""Cheaper pushes on PostgreSQL. The samples' foreign key to their series goes (checking it for every
sample at commit cost a quarter of a push; metrics.models.Sample.series says what keeps samples and
series together instead), and the series table leaves half of each page free, so that the running
totals a push updates on every series it touches are heap-only updates that write no index. Pages
written before keep their rows until those move; nothing is rewritten here. Elsewhere the field
changes in Django's state only (SQLite's table is rebuilt without the constraint)."""

import django.db.models.deletion
from django.db import migrations, models


def _fillfactor(value: int):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE metrics_series SET (fillfactor = {value})")

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0003_sample_partitions"),
    ]

    operations = [
        migrations.AlterField(
            model_name="sample",
            name="series",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="metrics.series",
            ),
        ),
        migrations.RunPython(_fillfactor(50), _fillfactor(100)),
    ]
