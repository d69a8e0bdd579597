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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from metrics import engine
from metrics.models import MetricBatch, Sample, Series

MAX_SAMPLES = 10_000
MAX_BATCH_ID_LENGTH = 128
MAX_AGE = timedelta(days=7)
MAX_AHEAD = timedelta(minutes=5)
MAX_LABELS = 32
MAX_LABEL_VALUE_LENGTH = 256


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


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _timestamp_ms(raw, now: datetime) -> int:
    if _finite(raw):
        moment = datetime.fromtimestamp(raw, tz=UTC)
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
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError("histogram.count must be a non-negative integer")
    if not _finite(total):
        raise ValueError("histogram.sum must be a finite number")
    if not isinstance(buckets, dict) or not buckets or len(buckets) > engine.MAX_BUCKETS + 1:
        raise ValueError(f"histogram.buckets must map 1 to {engine.MAX_BUCKETS + 1} upper bounds to counts")
    bounds = []
    for le, bucket_count in buckets.items():
        try:
            bound = math.inf if le == "+Inf" else float(le)
        except ValueError:
            raise ValueError(f"histogram bucket bound {str(le)[:32]!r} is not a number") from None
        if math.isnan(bound) or (math.isinf(bound) and le != "+Inf"):
            raise ValueError("histogram bucket bounds must be numbers or +Inf")
        if not isinstance(bucket_count, int) or isinstance(bucket_count, bool) or bucket_count < 0:
            raise ValueError("histogram bucket counts must be non-negative integers")
        bounds.append((bound, bucket_count))
    bounds.sort()
    if bounds[-1][0] != math.inf or bounds[-1][1] != count:
        raise ValueError('histogram.buckets must include "+Inf" equal to count')
    if any(later[1] < earlier[1] for earlier, later in pairwise(bounds)):
        raise ValueError("histogram bucket counts must be cumulative")
    return count, float(total), {engine.format_bound(b) if b != math.inf else "+Inf": c for b, c in bounds}


def parse_sample(index: int, raw, now: datetime) -> ParsedSample:
    if not isinstance(raw, dict):
        raise ValueError("a sample must be an object")
    name = raw.get("name")
    if (
        not isinstance(name, str)
        or not name
        or len(name) > engine.MAX_NAME_LENGTH
        or not engine.METRIC_NAME_RE.match(name)
    ):
        raise ValueError("name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
    kind = raw.get("type")
    if kind not in engine.TYPES:
        raise ValueError("type must be counter, gauge or histogram")
    labels = _labels(raw.get("labels"))
    ts = _timestamp_ms(raw.get("timestamp"), now)
    count = buckets = None
    if kind == "histogram":
        count, value, buckets = _histogram(raw.get("histogram"))
    else:
        value = raw.get("value")
        if not _finite(value):
            raise ValueError("value must be a finite number")
        value = float(value)
        if kind == "counter" and value < 0:
            raise ValueError("a counter sample is an increment and cannot be negative")
    return ParsedSample(index, name, kind, labels, labels_hash(labels), ts, value, count, buckets)


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
    now = timezone.now()
    parsed: list[ParsedSample] = []
    for index, raw in enumerate(samples):
        try:
            parsed.append(parse_sample(index, raw, now))
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
    for series_id, name, kind, hash_ in Series.objects.filter(agent_id=agent.pk, name__in=names).values_list(
        "id", "name", "type", "labels_hash"
    ):
        existing[(name, hash_)] = series_id
        types.setdefault(name, kind)
        per_name[name] += 1

    cap = settings.METRIC_MAX_SERIES_PER_NAME
    accepted, new_series = [], {}
    for sample in parsed:
        expected = types.get(sample.name)
        if expected is not None and expected != sample.type:
            result.errors.append(
                {"index": sample.index, "message": f"metric {sample.name} is a {expected}, not a {sample.type}"}
            )
            continue
        key = (sample.name, sample.labels_hash)
        if key not in existing and key not in new_series:
            if per_name[sample.name] >= cap:
                result.errors.append({"index": sample.index, "message": _series_cap_error(sample.name)})
                continue
            per_name[sample.name] += 1
            types[sample.name] = sample.type
            new_series[key] = sample
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
    return accepted


def _write_samples(rows) -> None:
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Sample._meta.db_table)
        copy_sql = f"COPY {table} (series_id, ts, value, count, buckets) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for series_id, s in rows:
                copy.write_row(
                    (series_id, s.ts, s.value, s.count, json.dumps(s.buckets) if s.buckets is not None else None)
                )
        return
    Sample.objects.bulk_create(
        [
            Sample(series_id=series_id, ts=s.ts, value=s.value, count=s.count, buckets=s.buckets)
            for series_id, s in rows
        ],
        batch_size=2000,
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

    qn = connection.ops.quote_name
    table = qn(Series._meta.db_table)
    # SET expressions read the row as it was, on PostgreSQL and SQLite alike.
    sql = (
        f"UPDATE {table} SET total = total + %s, histogram_count = histogram_count + %s, "  # noqa: S608
        f"histogram_sum = histogram_sum + %s, "
        f"last_value = CASE WHEN last_sample_at IS NULL OR last_sample_at <= %s THEN %s ELSE last_value END, "
        f"last_sample_at = CASE WHEN last_sample_at IS NULL OR last_sample_at < %s THEN %s ELSE last_sample_at END "
        f"WHERE id = %s"
    )
    id_field, time_field = Series._meta.pk, Series._meta.get_field("last_sample_at")
    params = []
    for series_id, state in sorted(touched.items(), key=lambda item: str(item[0])):
        moment = time_field.get_db_prep_value(datetime.fromtimestamp(state["ts"] / 1000, tz=UTC), connection)
        sum_delta = state["total"] if state["type"] == "histogram" else 0.0
        total_delta = state["total"] if state["type"] == "counter" else 0.0
        params.append(
            [
                total_delta,
                state["count"],
                sum_delta,
                moment,
                state["last"],
                moment,
                moment,
                id_field.get_db_prep_value(series_id, connection),
            ]
        )
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)

    histograms = {series_id: state["buckets"] for series_id, state in touched.items() if state["type"] == "histogram"}
    if histograms:
        for series in Series.objects.select_for_update().filter(pk__in=histograms).order_by("pk"):
            merged = dict(series.histogram_buckets)
            for le, bucket_count in histograms[series.pk].items():
                merged[le] = merged.get(le, 0) + bucket_count
            Series.objects.filter(pk=series.pk).update(histogram_buckets=merged)
