"""Metric sample ingestion: per-sample validation, idempotent batches, bulk storage.

Decoding and validating up to 10 000 samples is the hot path, so validation is plain Python
(the same rules a serializer would apply, with per-sample errors instead of failing the batch),
series are upserted with one query per batch rather than per sample, samples go to PostgreSQL
with COPY (bulk INSERT elsewhere) and series totals move with one UPDATE per touched series in
a single executemany.
"""

import hashlib
import json
import math
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from metrics import engine
from metrics.models import MetricBatch, Rollup, Sample, Series

MAX_SAMPLES = 10_000
MAX_BATCH_ID_LENGTH = 128
MAX_AGE = timedelta(days=7)
MAX_AHEAD = timedelta(minutes=5)
MAX_LABELS = 32
MAX_LABEL_VALUE_LENGTH = engine.MAX_LABEL_VALUE_LENGTH  # the engine cuts captured values to it


@dataclass
class ParsedSample:
    index: int
    name: str
    type: str
    labels: dict
    labels_hash: str
    ts: int  # Unix milliseconds
    value: float | None
    count: int | None = None
    buckets: dict | None = None


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    duplicate: bool = False

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": self.errors,
            "duplicate": self.duplicate,
        }


def labels_hash(labels: dict) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# Observations in one histogram sample (one interval of one series): far beyond any real interval.
# A series' running count is a bigint; _store refuses the sample that would take it past BIGINT_MAX.
MAX_COUNT = 10**12
BIGINT_MAX = 2**63 - 1
# Values and histogram sums, in magnitude. PostgreSQL refuses a float8 sum that overflows (SQLite
# makes it infinity), and the series' running totals and the per-minute rollups add samples up in
# SQL: with this bound not even 10**100 samples reach the largest double, so no total ever fails.
MAX_MAGNITUDE = 1e200
_finite = engine.finite_number


def _storable(value) -> bool:
    return _finite(value) and abs(value) <= MAX_MAGNITUDE


def _timestamp_ms(raw, now: datetime) -> int:
    if _finite(raw):
        try:
            moment = datetime.fromtimestamp(raw, tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise ValueError("timestamp must be Unix seconds (this looks like milliseconds or out of range)") from None
    elif isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise ValueError("timestamp must be ISO 8601 or Unix seconds") from None
        if moment.tzinfo is None:
            raise ValueError("timestamp must include a time zone offset")
    else:
        raise ValueError("timestamp must be ISO 8601 or Unix seconds")
    if moment < now - MAX_AGE:
        raise ValueError("timestamp is more than 7 days old")
    if moment > now + MAX_AHEAD:
        raise ValueError("timestamp is more than 5 minutes in the future")
    return int(moment.timestamp() * 1000)


def _labels(raw) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("labels must be an object")
    if len(raw) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for name, value in raw.items():
        if not engine.LABEL_NAME_RE.match(name) or name.startswith("__"):
            raise ValueError(f"invalid label name {name[:64]!r}")
        if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE_LENGTH:
            raise ValueError(f"label {name!r} must be a string of at most {MAX_LABEL_VALUE_LENGTH} characters")
    return raw


def _histogram(raw) -> tuple[int, float, dict]:
    if not isinstance(raw, dict):
        raise ValueError("a histogram sample needs histogram{count, sum, buckets}")
    count, total, buckets = raw.get("count"), raw.get("sum"), raw.get("buckets")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_COUNT:
        raise ValueError("histogram.count must be an integer from 0 to 10**12")
    if not _storable(total):
        raise ValueError("histogram.sum must be a finite number of at most 1e200 in magnitude")
    if not isinstance(buckets, dict) or not buckets or len(buckets) > engine.MAX_BUCKETS + 1:
        raise ValueError(f"histogram.buckets must map 1 to {engine.MAX_BUCKETS + 1} upper bounds to counts")
    bounds = []
    for le, bucket_count in buckets.items():
        try:
            bound = math.inf if le == "+Inf" else float(le)
        except (ValueError, OverflowError):
            raise ValueError(f"histogram bucket bound {str(le)[:32]!r} is not a number") from None
        if math.isnan(bound) or (math.isinf(bound) and le != "+Inf"):
            raise ValueError("histogram bucket bounds must be numbers or +Inf")
        if not isinstance(bucket_count, int) or isinstance(bucket_count, bool) or not 0 <= bucket_count <= MAX_COUNT:
            raise ValueError("histogram bucket counts must be integers from 0 to 10**12")
        bounds.append((bound, bucket_count))
    bounds.sort()
    if bounds[-1][0] != math.inf or bounds[-1][1] != count:
        raise ValueError('histogram.buckets must include "+Inf" equal to count')
    if any(later[1] < earlier[1] for earlier, later in pairwise(bounds)):
        raise ValueError("histogram bucket counts must be cumulative")
    return count, float(total), {engine.format_bound(b) if b != math.inf else "+Inf": c for b, c in bounds}


class BatchParser:
    """Validates the samples of one batch. Agents repeat names, label sets and timestamps across a
    batch, so each distinct one is checked (and the label set hashed) once."""

    def __init__(self, now: datetime):
        self.now = now
        self._names: set[str] = set()
        self._labels: dict[tuple, tuple[dict, str]] = {}
        self._times: dict[object, int] = {}

    def _name(self, name) -> str:
        if not isinstance(name, str):
            raise ValueError("name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        if name in self._names:
            return name
        if not name or len(name) > engine.MAX_NAME_LENGTH:
            raise ValueError("name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        if not engine.METRIC_NAME_RE.match(name):
            raise ValueError("name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        self._names.add(name)
        return name

    def _label_set(self, raw) -> tuple[dict, str]:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValueError("labels must be an object")
        try:
            key = tuple(sorted(raw.items()))
            known = self._labels.get(key)
        except TypeError:  # unhashable values: let validation say why
            key, known = None, None
        if known is None:
            labels = _labels(raw)
            known = (labels, labels_hash(labels))
            if key is not None:
                self._labels[key] = known
        return known

    def _time(self, raw) -> int:
        try:
            return self._times[raw]
        except (KeyError, TypeError):
            pass
        ts = _timestamp_ms(raw, self.now)
        with suppress(TypeError):  # an unhashable timestamp was refused above; this is for the odd float
            self._times[raw] = ts
        return ts

    def parse(self, index: int, raw) -> ParsedSample:
        if not isinstance(raw, dict):
            raise ValueError("a sample must be an object")
        name = self._name(raw.get("name"))
        kind = raw.get("type")
        if kind not in engine.TYPES:
            raise ValueError("type must be counter, gauge or histogram")
        labels, hash_ = self._label_set(raw.get("labels"))
        ts = self._time(raw.get("timestamp"))
        count = buckets = None
        if kind == "histogram":
            count, value, buckets = _histogram(raw.get("histogram"))
        else:
            value = raw.get("value")
            if not _storable(value):
                raise ValueError("value must be a finite number of at most 1e200 in magnitude")
            value = float(value)
            if kind == "counter" and value < 0:
                raise ValueError("a counter sample is an increment and cannot be negative")
        return ParsedSample(index, name, kind, labels, hash_, ts, value, count, buckets)


def _series_cap_error(name: str) -> str:
    cap = settings.METRIC_MAX_SERIES_PER_NAME
    return f"too many series for metric {name}: an agent may have at most {cap} label sets per metric name"


@transaction.atomic
def ingest(*, agent, batch_id: str | None, samples: list) -> IngestResult:
    """Store a batch for an agent. A batch_id seen before stores nothing (also against a racing copy)."""
    if batch_id is not None:
        try:
            with transaction.atomic():
                batch = MetricBatch.objects.create(agent_id=agent.pk, batch_id=batch_id)
        except IntegrityError:
            previous = MetricBatch.objects.filter(agent_id=agent.pk, batch_id=batch_id).first()
            return IngestResult(accepted=previous.accepted if previous else 0, duplicate=True)
    else:
        batch = None

    result = IngestResult()
    parser = BatchParser(timezone.now())
    parsed: list[ParsedSample] = []
    for index, raw in enumerate(samples):
        try:
            parsed.append(parser.parse(index, raw))
        except ValueError as exc:
            result.errors.append({"index": index, "message": str(exc)})

    accepted = _store(agent, parsed, result)
    result.accepted = len(accepted)
    result.rejected = len(samples) - result.accepted
    result.errors.sort(key=lambda error: error["index"])
    if batch is not None:
        MetricBatch.objects.filter(pk=batch.pk).update(accepted=result.accepted)
    return result


def _store(agent, parsed: list[ParsedSample], result: IngestResult) -> list[ParsedSample]:
    if not parsed:
        return []
    names = {sample.name for sample in parsed}
    existing: dict[tuple[str, str], tuple] = {}
    types: dict[str, str] = {}
    per_name: dict[str, int] = defaultdict(int)
    counts: dict[tuple[str, str], int] = defaultdict(int)  # histogram series' running counts, with this batch
    for series_id, name, kind, hash_, count in Series.objects.filter(agent_id=agent.pk, name__in=names).values_list(
        "id", "name", "type", "labels_hash", "histogram_count"
    ):
        existing[(name, hash_)] = series_id
        types.setdefault(name, kind)
        per_name[name] += 1
        counts[(name, hash_)] = count

    cap, names_cap = settings.METRIC_MAX_SERIES_PER_NAME, settings.METRIC_MAX_NAMES_PER_AGENT
    names_count = None  # the agent's metric names, counted when a batch brings a new one
    accepted, new_series = [], {}
    for sample in parsed:
        expected = types.get(sample.name)
        if expected is not None and expected != sample.type:
            result.errors.append(
                {"index": sample.index, "message": f"metric {sample.name} is a {expected}, not a {sample.type}"}
            )
            continue
        if expected is None:
            if names_count is None:
                names_count = Series.objects.filter(agent_id=agent.pk).values("name").distinct().count()
            if names_count >= names_cap:
                message = f"too many metric names: an agent may have at most {names_cap} ({sample.name} is new)"
                result.errors.append({"index": sample.index, "message": message})
                continue
            names_count += 1
        key = (sample.name, sample.labels_hash)
        if sample.count is not None and counts[key] + sample.count > BIGINT_MAX:
            message = f"histogram {sample.name}: the series' running count would pass {BIGINT_MAX}"
            result.errors.append({"index": sample.index, "message": message})
            continue
        if key not in existing and key not in new_series:
            if per_name[sample.name] >= cap:
                result.errors.append({"index": sample.index, "message": _series_cap_error(sample.name)})
                continue
            per_name[sample.name] += 1
            types[sample.name] = sample.type
            new_series[key] = sample
        if sample.count is not None:
            counts[key] += sample.count
        accepted.append(sample)

    if new_series:
        Series.objects.bulk_create(
            [
                Series(
                    organization_id=agent.organization_id,
                    agent_id=agent.pk,
                    name=sample.name,
                    type=sample.type,
                    labels=sample.labels,
                    labels_hash=sample.labels_hash,
                )
                for sample in new_series.values()
            ],
            ignore_conflicts=True,  # a concurrent batch may have created some of them
        )
        new_names = {name for name, _hash in new_series}
        for series_id, name, hash_ in Series.objects.filter(agent_id=agent.pk, name__in=new_names).values_list(
            "id", "name", "labels_hash"
        ):
            existing[(name, hash_)] = series_id

    rows = [(existing[(s.name, s.labels_hash)], s) for s in accepted]
    _write_samples(rows)
    _update_series(rows)
    _update_rollups(agent, accepted)
    return accepted


def _write_samples(rows) -> None:
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


def _copy_line(series_id, s: ParsedSample) -> str:
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


def _update_series(rows) -> None:
    """Running totals and the latest sample of each touched series."""
    touched: dict = {}
    for series_id, s in rows:
        state = touched.get(series_id)
        if state is None:
            state = touched[series_id] = {
                "type": s.type,
                "total": 0.0,
                "count": 0,
                "ts": s.ts,
                "last": s.value,
                "buckets": defaultdict(int),
            }
        if s.type == "counter":
            state["total"] += s.value
        elif s.type == "histogram":
            state["total"] += s.value
            state["count"] += s.count
            for le, bucket_count in s.buckets.items():
                state["buckets"][le] += bucket_count
        if s.ts >= state["ts"]:
            state["ts"], state["last"] = s.ts, s.value

    deltas = []
    for series_id, state in sorted(touched.items(), key=lambda item: str(item[0])):
        moment = datetime.fromtimestamp(state["ts"] / 1000, tz=UTC)
        total_delta = state["total"] if state["type"] == "counter" else 0.0
        sum_delta = state["total"] if state["type"] == "histogram" else 0.0
        deltas.append((series_id, total_delta, state["count"], sum_delta, moment, state["last"]))
    if connection.vendor == "postgresql":
        _apply_series_deltas_copy(deltas)
    else:
        _apply_series_deltas_values(deltas)

    histograms = {series_id: state["buckets"] for series_id, state in touched.items() if state["type"] == "histogram"}
    if histograms:
        for series in Series.objects.select_for_update().filter(pk__in=histograms).order_by("pk"):
            merged = dict(series.histogram_buckets)
            for le, bucket_count in histograms[series.pk].items():
                merged[le] = merged.get(le, 0) + bucket_count
            Series.objects.filter(pk=series.pk).update(histogram_buckets=merged)


def _update_rollups(agent, samples: list[ParsedSample]) -> None:
    """Fold counter and gauge samples into the per-minute rollups (one upsert per name and minute)."""
    minutes: dict[tuple[str, int], list] = {}
    for s in samples:
        if s.type == "histogram":
            continue
        key = (s.name, s.ts // 60_000 * 60)
        state = minutes.get(key)
        if state is None:
            minutes[key] = [s.value, 1, s.value, s.value]
        else:
            state[0] += s.value
            state[1] += 1
            state[2] = min(state[2], s.value)
            state[3] = max(state[3], s.value)
    if not minutes:
        return
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
