"""The raw SQL of ingestion, per database vendor: samples and series deltas by COPY on PostgreSQL
(bulk INSERT and UPDATE ... FROM (VALUES ...) on SQLite), the per-minute rollup upsert, and the
rollup rebuild. Values reach it as numbers, UUIDs and JSON the parser has checked."""

import json

from django.db import connection, transaction

from metrics.models import Rollup, Sample, Series


def write_samples(rows) -> None:
    """`rows` are (series id, ParsedSample)."""
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Sample._meta.db_table)
        copy_sql = f"COPY {table} (series_id, ts, value, count, buckets) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.write("".join(_copy_line(series_id, s) for series_id, s in rows))
        return
    Sample.objects.bulk_create(
        [
            Sample(series_id=series_id, ts=s.ts, value=s.value, count=s.count, buckets=s.buckets)
            for series_id, s in rows
        ],
        batch_size=2000,
    )


def _copy_line(series_id, s) -> str:
    """One row of COPY's text format (values are numbers, a UUID and JSON; only backslashes need escaping)."""
    if s.buckets is None:
        return f"{series_id}\t{s.ts}\t{s.value!r}\t\\N\t\\N\n"
    buckets = json.dumps(s.buckets, separators=(",", ":")).replace("\\", "\\\\")
    return f"{series_id}\t{s.ts}\t{s.value!r}\t{s.count}\t{buckets}\n"


# SET expressions read each row as it was, on PostgreSQL and SQLite alike.
_SERIES_SET = (
    "total = s.total + v.total, histogram_count = s.histogram_count + v.cnt, histogram_sum = s.histogram_sum + v.hsum, "
    "last_value = CASE WHEN s.last_sample_at IS NULL OR s.last_sample_at <= v.ts THEN v.last ELSE s.last_value END, "
    "last_sample_at = CASE WHEN s.last_sample_at IS NULL OR s.last_sample_at < v.ts THEN v.ts ELSE s.last_sample_at END"
)


def _copy_value(value: float | None) -> str:
    return "\\N" if value is None else repr(value)


def apply_series_deltas(deltas: list[tuple]) -> None:
    """Add (series id, total, histogram count, histogram sum, latest time, latest value) to each series."""
    if connection.vendor == "postgresql":
        _apply_series_deltas_copy(deltas)
    else:
        _apply_series_deltas_values(deltas)


def _apply_series_deltas_copy(deltas: list[tuple]) -> None:
    """PostgreSQL: COPY the deltas into a temporary table and UPDATE from it (one join)."""
    table = connection.ops.quote_name(Series._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS logfleet_series_delta (id uuid, total float8, cnt bigint, hsum float8, "
            "ts timestamptz, last float8) ON COMMIT DELETE ROWS"
        )
        cursor.execute("DELETE FROM logfleet_series_delta")  # an earlier batch of the same transaction
        with cursor.copy("COPY logfleet_series_delta FROM STDIN") as copy:
            copy.write(
                "".join(
                    f"{series_id}\t{total!r}\t{count}\t{hsum!r}\t{moment.isoformat()}\t{_copy_value(last)}\n"
                    for series_id, total, count, hsum, moment, last in deltas
                )
            )
        cursor.execute(f"UPDATE {table} AS s SET {_SERIES_SET} FROM logfleet_series_delta v WHERE s.id = v.id")  # noqa: S608


def _apply_series_deltas_values(deltas: list[tuple]) -> None:
    """SQLite: one UPDATE ... FROM (VALUES ...) per 2 000 series."""
    table = connection.ops.quote_name(Series._meta.db_table)
    id_field, time_field = Series._meta.pk, Series._meta.get_field("last_sample_at")
    with connection.cursor() as cursor:
        for start in range(0, len(deltas), 2000):
            chunk = deltas[start : start + 2000]
            rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
            params = []
            for series_id, total, count, hsum, moment, last in chunk:
                params += [
                    id_field.get_db_prep_value(series_id, connection),
                    total,
                    count,
                    hsum,
                    time_field.get_db_prep_value(moment, connection),
                    last,
                ]
            cursor.execute(
                f"WITH v(id, total, cnt, hsum, ts, last) AS (VALUES {rows}) "  # noqa: S608
                f"UPDATE {table} AS s SET {_SERIES_SET} FROM v WHERE s.id = v.id",
                params,
            )


def upsert_rollups(agent, minutes: dict[tuple[str, int], list]) -> None:
    """Add {(name, minute): [sum, count, min, max]} to the agent's per-minute rollups (one upsert each)."""
    qn = connection.ops.quote_name
    table = qn(Rollup._meta.db_table)
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    sql = (
        f"INSERT INTO {table} (organization_id, agent_id, name, minute, sum, count, min, max) "  # noqa: S608
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT (agent_id, name, minute) DO UPDATE SET sum = {table}.sum + excluded.sum, "
        f"count = {table}.count + excluded.count, min = {least}({table}.min, excluded.min), "
        f"max = {greatest}({table}.max, excluded.max)"
    )
    fields = Rollup._meta
    organization_id = fields.get_field("organization").get_db_prep_value(agent.organization_id, connection)
    agent_id = fields.get_field("agent").get_db_prep_value(agent.pk, connection)
    params = [[organization_id, agent_id, name, minute, *state] for (name, minute), state in sorted(minutes.items())]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def rollups_rebuild(*, organization_id) -> int:
    """Recompute an organization's rollups from its samples (after a bulk load that bypassed ingest)."""
    qn = connection.ops.quote_name
    rollup, sample, series = (qn(model._meta.db_table) for model in (Rollup, Sample, Series))
    org = Series._meta.get_field("organization").get_db_prep_value(organization_id, connection)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {rollup} WHERE organization_id = %s", [org])  # noqa: S608
        cursor.execute(
            f"INSERT INTO {rollup} (organization_id, agent_id, name, minute, sum, count, min, max) "  # noqa: S608
            f"SELECT se.organization_id, se.agent_id, se.name, (sa.ts / 60000) * 60, SUM(sa.value), COUNT(*), "
            f"MIN(sa.value), MAX(sa.value) FROM {sample} sa JOIN {series} se ON se.id = sa.series_id "
            f"WHERE se.organization_id = %s AND se.type IN ('counter', 'gauge') "
            f"GROUP BY se.organization_id, se.agent_id, se.name, (sa.ts / 60000) * 60",
            [org],
        )
        return cursor.rowcount
