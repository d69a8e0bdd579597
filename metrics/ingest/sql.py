"""The raw SQL of ingestion, per database vendor: a batch's id (one INSERT ... ON CONFLICT DO
NOTHING), samples by binary COPY and series deltas in one UPDATE from arrays on PostgreSQL (bulk
INSERT and UPDATE ... FROM (VALUES ...) on SQLite), the per-minute rollup upsert, and the rollup
rebuild. Values reach it as numbers, UUIDs and JSON the parser has checked."""

import struct
from datetime import UTC, datetime

from django.db import connection, transaction

from agents.models import Agent
from logfleet import clock
from metrics.models import MetricBatch, Rollup, Sample, Series


def batch_record(agent, batch_id: str) -> int | None:
    """Remember an agent's batch id: the new row's id, or None when the agent sent it before (a
    racing copy waits here for the first to commit or roll back)."""
    fields = MetricBatch._meta
    table = connection.ops.quote_name(fields.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (agent_id, batch_id, received_at, accepted) VALUES (%s, %s, %s, 0) "  # noqa: S608
            "ON CONFLICT (agent_id, batch_id) DO NOTHING RETURNING id",
            [
                fields.get_field("agent").get_db_prep_value(agent.pk, connection),
                batch_id,
                fields.get_field("received_at").get_db_prep_value(clock.now(), connection),
            ],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def agent_hold(agent) -> bool:
    """Hold the agent's row until the batch commits (FOR KEY SHARE on PostgreSQL: pushes of one agent
    do not wait for each other), so that its deletion waits for the batch and then deletes all of it
    (agents.services.agent_delete); False when the agent is gone. SQLite's one writer at a
    time orders them already."""
    table = connection.ops.quote_name(Agent._meta.db_table)
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {table} WHERE id = %s{lock}",  # noqa: S608
            [Agent._meta.pk.get_db_prep_value(agent.pk, connection)],
        )
        return cursor.fetchone() is not None


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # the binary format's header: no flags, no extension
_COPY_TRAILER = b"\xff\xff"
_ROW_PREFIX = struct.pack("!hi", 5, 16)  # five fields; the first, the series id, is 16 bytes


def write_samples(groups) -> None:
    """`groups` are (series id, rows): rows as metrics.ingest.parse.Encoder wrote them for this database."""
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Sample._meta.db_table)
        parts = [_COPY_SIGNATURE]
        for series_id, rows in groups:
            prefix = _ROW_PREFIX + series_id.bytes
            parts.append(prefix)
            parts.append(prefix.join(rows))
        parts.append(_COPY_TRAILER)
        copy_sql = f"COPY {table} (series_id, ts, value, count, buckets) FROM STDIN (FORMAT BINARY)"
        with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.write(b"".join(parts))
        return
    Sample.objects.bulk_create(
        [
            Sample(series_id=series_id, ts=ts, value=value, count=count, buckets=buckets)
            for series_id, rows in groups
            for ts, value, count, buckets in rows
        ],
        batch_size=2000,
    )


# SET expressions read each row as it was, on PostgreSQL and SQLite alike.
_SERIES_SET = (
    "total = s.total + v.total, histogram_count = s.histogram_count + v.cnt, histogram_sum = s.histogram_sum + v.hsum, "
    "last_value = CASE WHEN s.last_sample_at IS NULL OR s.last_sample_at <= v.ts THEN v.last ELSE s.last_value END, "
    "last_sample_at = CASE WHEN s.last_sample_at IS NULL OR s.last_sample_at < v.ts THEN v.ts ELSE s.last_sample_at END"
)


def apply_series_deltas(deltas: list[tuple]) -> int:
    """Add (series id, total, histogram count, histogram sum, latest time in Unix ms, latest value)
    to each series; how many series were found."""
    if connection.vendor == "postgresql":
        return _apply_series_deltas_arrays(deltas)
    return _apply_series_deltas_values(deltas)


def _array(values) -> str:
    """A PostgreSQL array literal of numbers or UUIDs: one text parameter instead of a list the driver
    adapts element by element (a third of the UPDATE's time for a thousand series)."""
    return "{" + ",".join(map(str, values)) + "}"


def _apply_series_deltas_arrays(deltas: list[tuple]) -> int:
    """PostgreSQL: one UPDATE joined to the deltas as arrays (one round trip for every series)."""
    table = connection.ops.quote_name(Series._meta.db_table)
    columns = [_array(column) for column in zip(*deltas, strict=True)] if deltas else ["{}"] * 6
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS s SET {_SERIES_SET} FROM (SELECT id, total, cnt, hsum, "  # noqa: S608
            "to_timestamp(ms / 1000.0) AS ts, last FROM unnest(%s::uuid[], %s::float8[], %s::bigint[], "
            "%s::float8[], %s::bigint[], %s::float8[]) AS d(id, total, cnt, hsum, ms, last)) AS v "
            "WHERE s.id = v.id",
            columns,
        )
        return cursor.rowcount


def _apply_series_deltas_values(deltas: list[tuple]) -> int:
    """SQLite: one UPDATE ... FROM (VALUES ...) per 2 000 series."""
    table = connection.ops.quote_name(Series._meta.db_table)
    id_field, time_field = Series._meta.pk, Series._meta.get_field("last_sample_at")
    found = 0
    with connection.cursor() as cursor:
        for start in range(0, len(deltas), 2000):
            chunk = deltas[start : start + 2000]
            rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
            params = []
            for series_id, total, count, hsum, ms, last in chunk:
                moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
                params += [
                    id_field.get_db_prep_value(series_id, connection),
                    total,
                    count,
                    hsum,
                    time_field.get_db_prep_value(moment, connection),
                    last,
                ]
            cursor.execute(
                # An UPDATE first (not WITH ... UPDATE), so that the driver reports the rows it changed.
                f"UPDATE {table} AS s SET {_SERIES_SET} FROM (SELECT column1 AS id, column2 AS total, "  # noqa: S608
                f"column3 AS cnt, column4 AS hsum, column5 AS ts, column6 AS last FROM (VALUES {rows})) AS v "
                "WHERE s.id = v.id",
                params,
            )
            found += cursor.rowcount
    return found


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
