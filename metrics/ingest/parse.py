"""What a batch and each of its samples must be: names, label sets, timestamps, values and
histograms. Plain Python, the hot path: a refused sample is an InvalidSample that ingest answers
as that sample's error (the batch goes on); a refused batch is Invalid."""

import hashlib
import json
import math
import struct
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import orjson

from logfleet.errors import Invalid
from metrics import engine
from metrics.histograms import buckets_add

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
    """SHA-256 of the label set as compact JSON with sorted keys and non-ASCII escaped (as
    json.dumps writes it: the hashes stored with every series). orjson writes the same bytes when
    they are ASCII without DEL, which is nearly always, and faster."""
    text = orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)
    if not text.isascii() or b"\x7f" in text:
        text = json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(text).hexdigest()


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


class Encoder:
    """How the validation pass writes each accepted sample for storage: the tail of a binary COPY
    row on PostgreSQL (everything after the series id, so a row is the series' prefix and this),
    a tuple for the bulk INSERT elsewhere."""

    def __init__(self, binary: bool):
        self.binary = binary
        if binary:
            pack = _VALUE_TAIL.pack
            self.value = lambda ts, value: pack(8, ts, 8, value, -1, -1)
        else:
            self.value = lambda ts, value: (ts, value, None, None)

    def histogram(self, ts: int, total: float, count: int, buckets: dict):
        if not self.binary:
            return (ts, total, count, buckets)
        text = orjson.dumps(buckets)
        return _HISTOGRAM_TAIL.pack(8, ts, 8, total, 8, count, len(text) + 1) + b"\x01" + text


# A binary COPY row's fields after the series id: ts (int8), value (float8), then count (int8) and
# buckets (jsonb: version 1 and the text), each as a length and the bytes, -1 for NULL.
_VALUE_TAIL = struct.Struct("!iqidii")
_HISTOGRAM_TAIL = struct.Struct("!iqidiqi")


class Group:
    """The samples of one batch for one series: (name, labels hash, type). Everything storage needs
    of them is gathered while they are validated: their encoded rows, the series' running totals
    and latest sample, and the per-minute rollups of counters and gauges."""

    __slots__ = ("buckets", "count", "hash", "histograms", "indexes", "labels", "last", "minutes", "name", "rows")
    __slots__ += ("total", "ts", "type")

    def __init__(self, name: str, kind: str, labels: dict, hash_: str):
        self.name, self.type, self.labels, self.hash = name, kind, labels, hash_
        self.indexes: list[int] = []
        self.rows: list = []
        self.histograms: list[tuple] = []  # a histogram's (ts, sum, count, buckets) per sample
        self.total = 0.0  # a counter's increments, a histogram's sums
        self.count = 0
        self.buckets: dict[str, int] = {}
        self.ts = -1
        self.last = None
        self.minutes: dict[int, list] = {}  # minute (Unix seconds) → [sum, count, min, max]


@dataclass
class Batch:
    """A validated batch: its series' groups (in the order their first sample came) and the samples
    refused so far, as {index, message}."""

    groups: list[Group]
    errors: list[dict]
    first_ms: int = 0  # the earliest and latest timestamps that passed their check
    last_ms: int = 0

    def refuse(self, group: Group, message: str) -> None:
        """Refuse every sample of a group (a check of the batch as a whole, or of storage)."""
        self.errors.extend({"index": index, "message": message} for index in group.indexes)
        self.groups.remove(group)

    @property
    def accepted(self) -> int:
        return sum(len(group.indexes) for group in self.groups)


def _bad_value(value, kind: str) -> str | None:
    """Why a counter's or gauge's value is refused, or None (the validation pass's slow path)."""
    if not _storable(value):
        return "value must be a finite number of at most 1e200 in magnitude"
    if kind == "counter" and value < 0:
        return "a counter sample is an increment and cannot be negative"
    return None


class _Known:
    """Names and label sets that passed their checks, with each label set's hash: agents send the
    same ones batch after batch, so this process checks (and hashes) each once. Bounded: when full
    it starts over."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self.names: set[str] = set()
        self.label_sets: dict[tuple, tuple[dict, str]] = {}  # label items as sent → (labels, hash)

    def name(self, name) -> str:
        if not isinstance(name, str):
            raise InvalidSample("name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        if name in self.names:
            return name
        if not name or len(name) > engine.MAX_NAME_LENGTH or not engine.METRIC_NAME_RE.match(name):
            raise InvalidSample("name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        if len(self.names) >= self.max_entries:
            self.names = set()
        self.names.add(name)
        return name

    def label_set(self, raw) -> tuple[dict, str]:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InvalidSample("labels must be an object")
        try:
            key = tuple(raw.items())
            known = self.label_sets.get(key)
        except TypeError:  # unhashable values: let validation say why
            key, known = None, None
        if known is None:
            labels = _labels(raw)
            known = (labels, labels_hash(labels))
            if key is not None:
                if len(self.label_sets) >= self.max_entries:
                    self.label_sets = {}
                self.label_sets[key] = known
        return known


_known = _Known(max_entries=100_000)


class _Checker:
    """The timestamps of one batch, each distinct one checked once (they are checked against now)."""

    def __init__(self, now: datetime):
        self.now = now
        self.times: dict[object, int] = {}

    def time(self, raw) -> int:
        try:
            return self.times[raw]
        except (KeyError, TypeError):
            pass
        ts = _timestamp_ms(raw, self.now)
        with suppress(TypeError):  # an unhashable timestamp was refused above; this is for the odd float
            self.times[raw] = ts
        return ts


def validate_batch(samples: list, now: datetime, encoder: Encoder) -> Batch:
    """One pass over a batch: each sample checked (InvalidSample's message becomes its error), its
    row encoded, and its series' totals and rollups gathered."""
    checker = _Checker(now)
    times = checker.times
    groups: dict[tuple, Group] = {}  # by (name, labels hash, type)
    seen: dict[tuple, Group] = {}  # by (name, type, label items as sent): the checks already passed
    errors: list[dict] = []
    encode_value, encode_histogram = encoder.value, encoder.histogram
    for index, raw in enumerate(samples):
        try:
            if type(raw) is not dict:
                raise InvalidSample("a sample must be an object")
            name, kind, labels = raw.get("name"), raw.get("type"), raw.get("labels")
            try:
                key = (name, kind, tuple(labels.items()) if type(labels) is dict else labels)
                group = seen.get(key)
            except TypeError:  # an unhashable name, type or label value: the checks say why
                key, group = None, None
            if group is None:
                group = _group(groups, name, kind, labels)
                if key is not None:
                    seen[key] = group
            moment = raw.get("timestamp")
            try:
                ts = times[moment]
            except (KeyError, TypeError):
                ts = checker.time(moment)
            if group.type == "histogram":
                count, value, buckets = _histogram(raw.get("histogram"))
                group.rows.append(encode_histogram(ts, value, count, buckets))
                group.histograms.append((ts, value, count, buckets))
                group.total += value
                group.count += count
                group.buckets = buckets_add(group.buckets, buckets)
            else:
                value = raw.get("value")
                # The common case, a float in range (NaN and infinity fail the comparison); the
                # rest goes through the full check.
                if type(value) is not float or not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
                    problem = _bad_value(value, group.type)
                    if problem is not None:
                        raise InvalidSample(problem)
                    value = float(value)
                elif value < 0 and group.type == "counter":
                    raise InvalidSample("a counter sample is an increment and cannot be negative")
                group.rows.append(encode_value(ts, value))
                if group.type == "counter":
                    group.total += value
                minute = ts // 60_000 * 60
                state = group.minutes.get(minute)
                if state is None:
                    group.minutes[minute] = [value, 1, value, value]
                else:
                    state[0] += value
                    state[1] += 1
                    if value < state[2]:
                        state[2] = value
                    if value > state[3]:
                        state[3] = value
            if ts >= group.ts:
                group.ts, group.last = ts, value
            group.indexes.append(index)
        except InvalidSample as exc:
            errors.append({"index": index, "message": str(exc)})
    return Batch(
        [group for group in groups.values() if group.indexes],
        errors,
        first_ms=min(times.values(), default=0),
        last_ms=max(times.values(), default=0),
    )


def _group(groups: dict, name, kind, labels) -> Group:
    """The group of a sample whose name, type and labels are new to this batch (checked here)."""
    name = _known.name(name)
    if kind not in engine.TYPES:
        raise InvalidSample("type must be counter, gauge or histogram")
    labels, hash_ = _known.label_set(labels)
    group = groups.get((name, hash_, kind))
    if group is None:
        group = groups[(name, hash_, kind)] = Group(name, kind, labels, hash_)
    return group
