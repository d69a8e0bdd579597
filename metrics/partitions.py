"""Samples on PostgreSQL: one table partitioned by day of `ts` (native declarative partitioning, no
extension), so that retention drops whole days and a query over a time range reads only the days
it covers. Elsewhere (SQLite) the samples are one table and none of this applies.

A day's partition is `metrics_sample_pYYYYMMDD` and holds [midnight, next midnight) UTC in Unix
milliseconds. Partitions are made ahead of time (by the migration, and by `prune_metrics`, which
runs from cron) and on demand by ingestion for the days a batch touches. A new partition is
created on its own and then attached, which locks the samples table far less than CREATE TABLE ...
PARTITION OF would (ingestion goes on meanwhile).

    partitions_ensure(first_ms=..., last_ms=...)   # every day in between has its partition
    for day, name in partitions_before(boundary_ms).items():   # the days wholly before it
        partition_drop(day, name)
"""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from logfleet import clock
from metrics.models import Sample

DAY_MS = 86_400_000
AHEAD_DAYS = 3  # days after today whose partitions exist before a sample needs them
_LOCK_KEY = 7_263_118_001  # pg_advisory_xact_lock key: one process at a time creates partitions

_known_days: set[int] = set()  # days this process saw committed (partitions are never re-created)


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def _table() -> str:
    return Sample._meta.db_table


def partition_name(day: int) -> str:
    """The partition of day `day` (days since 1970-01-01 UTC)."""
    return f"{_table()}_p{datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day):%Y%m%d}"


def partition_days() -> dict[int, str]:
    """The days that have a partition, and its name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [_table()],
        )
        rows = cursor.fetchall()
    days = {}
    for name, bound in rows:
        # FOR VALUES FROM ('1705276800000') TO ('1705363200000')
        low = int(bound.split("'")[1])
        days[low // DAY_MS] = name
    return days


def partitions_ensure(*, first_ms: int, last_ms: int) -> list[str]:
    """Create the partitions of the days from first_ms to last_ms that have none; their names.

    In a transaction of its own where it can (ingestion calls it before its own one begins), so the
    locks that attaching takes are held for a moment only."""
    if not partitioned():
        return []
    days = set(range(first_ms // DAY_MS, last_ms // DAY_MS + 1))
    if days <= _known_days:
        return []
    created = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        existing = partition_days()
        table = connection.ops.quote_name(_table())
        with connection.cursor() as cursor:
            for day in sorted(days - set(existing)):
                name = connection.ops.quote_name(partition_name(day))
                cursor.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
                cursor.execute(
                    f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
                    [day * DAY_MS, (day + 1) * DAY_MS],
                )
                created.append(partition_name(day))
        transaction.on_commit(lambda: _known_days.update(days))
    return created


def forget() -> None:
    """Forget the partitions this process saw (one was dropped since)."""
    _known_days.clear()


def today_ms() -> int:
    """Midnight UTC today, in Unix milliseconds."""
    return int(clock.unix() * 1000) // DAY_MS * DAY_MS


def partitions_ensure_ahead() -> list[str]:
    """Partitions from today to AHEAD_DAYS after it."""
    today = today_ms()
    return partitions_ensure(first_ms=today, last_ms=today + AHEAD_DAYS * DAY_MS)


def partitions_before(boundary_ms: int) -> dict[int, str]:
    """The partitions whose whole day is before `boundary_ms`."""
    return {day: name for day, name in partition_days().items() if (day + 1) * DAY_MS <= boundary_ms}


def partition_rows(name: str, *, exact_below: int = 1_000_000) -> int:
    """A partition's rows: PostgreSQL's estimate for a big one (counting 10 million rows takes
    seconds), an exact count below `exact_below` or where there is no estimate yet."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [name])
        estimate = cursor.fetchone()[0]
        if estimate >= exact_below:
            return estimate
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(name)}")  # noqa: S608
        return cursor.fetchone()[0]


def partition_drop(day: int, name: str) -> None:
    """Drop one day's partition (a short exclusive lock on the samples table)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {connection.ops.quote_name(name)}")
    _known_days.discard(day)
