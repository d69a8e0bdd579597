"""What a batch and each of its samples must be: names, label sets, timestamps, values and
histograms. Plain Python, the hot path: a refused sample is an InvalidSample that ingest answers
as that sample's error (the batch goes on); a refused batch is Invalid."""

import hashlib
import json
import math
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from logfleet.errors import Invalid
from metrics import engine

MAX_SAMPLES = 10_000
MAX_BATCH_ID_LENGTH = 128
MAX_AGE = timedelta(days=7)
MAX_AHEAD = timedelta(minutes=5)
MAX_LABELS = 32
MAX_LABEL_VALUE_LENGTH = engine.MAX_LABEL_VALUE_LENGTH  # the engine cuts captured values to it
# Observations in one histogram sample (one interval of one series): far beyond any real interval.
MAX_COUNT = 10**12
# Values and histogram sums, in magnitude. PostgreSQL refuses a float8 sum that overflows (SQLite
# makes it infinity), and the series' running totals and the per-minute rollups add samples up in
# SQL: with this bound not even 10**100 samples reach the largest double, so no total ever fails.
MAX_MAGNITUDE = 1e200
_finite = engine.finite_number


class InvalidSample(Exception):
    """Why one sample is refused; ingest reports it with the sample's index and stores the others."""


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


def check_batch(*, samples, batch_id) -> None:
    """Invalid when the batch as a whole is refused (then nothing of it is stored)."""
    errors = {}
    if not isinstance(samples, list):
        errors["samples"] = "must be a list of samples"
    elif len(samples) > MAX_SAMPLES:
        errors["samples"] = f"at most {MAX_SAMPLES} samples per batch"
    if batch_id is not None and (not isinstance(batch_id, str) or not 1 <= len(batch_id) <= MAX_BATCH_ID_LENGTH):
        errors["batch_id"] = f"must be a string of 1 to {MAX_BATCH_ID_LENGTH} characters"
    if errors:
        raise Invalid(details=errors)


def labels_hash(labels: dict) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _storable(value) -> bool:
    return _finite(value) and abs(value) <= MAX_MAGNITUDE


def _timestamp_ms(raw, now: datetime) -> int:
    if _finite(raw):
        try:
            moment = datetime.fromtimestamp(raw, tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise InvalidSample(
                "timestamp must be Unix seconds (this looks like milliseconds or out of range)"
            ) from None
    elif isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise InvalidSample("timestamp must be ISO 8601 or Unix seconds") from None
        if moment.tzinfo is None:
            raise InvalidSample("timestamp must include a time zone offset")
    else:
        raise InvalidSample("timestamp must be ISO 8601 or Unix seconds")
    if moment < now - MAX_AGE:
        raise InvalidSample("timestamp is more than 7 days old")
    if moment > now + MAX_AHEAD:
        raise InvalidSample("timestamp is more than 5 minutes in the future")
    return int(moment.timestamp() * 1000)


def _labels(raw) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidSample("labels must be an object")
    if len(raw) > MAX_LABELS:
        raise InvalidSample(f"at most {MAX_LABELS} labels")
    for name, value in raw.items():
        if not engine.LABEL_NAME_RE.match(name) or name.startswith("__"):
            raise InvalidSample(f"invalid label name {name[:64]!r}")
        if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE_LENGTH:
            raise InvalidSample(f"label {name!r} must be a string of at most {MAX_LABEL_VALUE_LENGTH} characters")
    return raw


def _histogram(raw) -> tuple[int, float, dict]:
    if not isinstance(raw, dict):
        raise InvalidSample("a histogram sample needs histogram{count, sum, buckets}")
    count, total, buckets = raw.get("count"), raw.get("sum"), raw.get("buckets")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_COUNT:
        raise InvalidSample("histogram.count must be an integer from 0 to 10**12")
    if not _storable(total):
        raise InvalidSample("histogram.sum must be a finite number of at most 1e200 in magnitude")
    if not isinstance(buckets, dict) or not buckets or len(buckets) > engine.MAX_BUCKETS + 1:
        raise InvalidSample(f"histogram.buckets must map 1 to {engine.MAX_BUCKETS + 1} upper bounds to counts")
    bounds = []
    for le, bucket_count in buckets.items():
        try:
            bound = math.inf if le == "+Inf" else float(le)
        except (ValueError, OverflowError):
            raise InvalidSample(f"histogram bucket bound {str(le)[:32]!r} is not a number") from None
        if math.isnan(bound) or (math.isinf(bound) and le != "+Inf"):
            raise InvalidSample("histogram bucket bounds must be numbers or +Inf")
        if not isinstance(bucket_count, int) or isinstance(bucket_count, bool) or not 0 <= bucket_count <= MAX_COUNT:
            raise InvalidSample("histogram bucket counts must be integers from 0 to 10**12")
        bounds.append((bound, bucket_count))
    bounds.sort()
    if bounds[-1][0] != math.inf or bounds[-1][1] != count:
        raise InvalidSample('histogram.buckets must include "+Inf" equal to count')
    if any(later[1] < earlier[1] for earlier, later in pairwise(bounds)):
        raise InvalidSample("histogram bucket counts must be cumulative")
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
            raise InvalidSample("name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        if name in self._names:
            return name
        if not name or len(name) > engine.MAX_NAME_LENGTH:
            raise InvalidSample("name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        if not engine.METRIC_NAME_RE.match(name):
            raise InvalidSample("name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        self._names.add(name)
        return name

    def _label_set(self, raw) -> tuple[dict, str]:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InvalidSample("labels must be an object")
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
        """The sample, checked; InvalidSample says why it is refused."""
        if not isinstance(raw, dict):
            raise InvalidSample("a sample must be an object")
        name = self._name(raw.get("name"))
        kind = raw.get("type")
        if kind not in engine.TYPES:
            raise InvalidSample("type must be counter, gauge or histogram")
        labels, hash_ = self._label_set(raw.get("labels"))
        ts = self._time(raw.get("timestamp"))
        count = buckets = None
        if kind == "histogram":
            count, value, buckets = _histogram(raw.get("histogram"))
        else:
            value = raw.get("value")
            if not _storable(value):
                raise InvalidSample("value must be a finite number of at most 1e200 in magnitude")
            value = float(value)
            if kind == "counter" and value < 0:
                raise InvalidSample("a counter sample is an increment and cannot be negative")
        return ParsedSample(index, name, kind, labels, hash_, ts, value, count, buckets)
