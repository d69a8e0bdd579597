"""Reads of metric data: series lookups, time-bucketed queries, the Prometheus export."""

import contextlib
import math
from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Count, F, Max, Min, Q, Sum, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform

from agents.models import Agent
from logfleet.errors import Invalid
from metrics.histograms import buckets_add
from metrics.models import MetricConfig, Rollup, Sample, Series

SAMPLE_AGGS = ("sum", "avg", "min", "max", "count", "rate")
HISTOGRAM_AGGS = ("p50", "p90", "p99", "count", "sum")
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def series_queryset(*, organization_id, name: str | None = None, agent_id=None, labels=()):
    queryset = Series.objects.filter(organization_id=organization_id)
    if name:
        queryset = queryset.filter(name=name)
    if agent_id:
        queryset = queryset.filter(agent_id=agent_id)
    for index, (key, value) in enumerate(labels):
        alias = f"label_{index}"
        queryset = queryset.alias(**{alias: KeyTransform(key, "labels")}).filter(**{alias: value})
    return queryset


def series_list(*, organization_id, name: str | None = None, agent_id=None, labels=()):
    """The series the filters match, by name, agent and id."""
    return series_queryset(organization_id=organization_id, name=name, agent_id=agent_id, labels=labels).order_by(
        "name", "agent_id", "id"
    )


def metric_config_list(*, organization_id, enabled: bool | None = None, log_source: str | None = None):
    """The organization's metric configs, by name: only the enabled (or disabled) ones, of one log source."""
    queryset = MetricConfig.objects.filter(organization_id=organization_id).order_by("name", "id")
    if enabled is not None:
        queryset = queryset.filter(enabled=enabled)
    if log_source is not None:
        queryset = queryset.filter(log_source=log_source)
    return queryset


@dataclass(frozen=True)
class Query:
    organization_id: object
    name: str
    start: int  # Unix seconds, inclusive
    end: int  # Unix seconds, exclusive
    step: int
    agg: str
    group_by: tuple[str, ...] = ()
    agent_id: object = None
    labels: tuple[tuple[str, str], ...] = ()
    # The metric's type when the caller has just read it from these very series (an agent's
    # charts): one query less per chart. None: run_query reads it.
    kind: str | None = None


def _group_expressions(group_by) -> dict:
    expressions = {}
    for index, key in enumerate(group_by):
        if key == "agent_id":
            expressions[f"g{index}"] = F("series__agent_id")
        else:
            expressions[f"g{index}"] = KeyTextTransform(key, "series__labels")
    return expressions


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation within the bucket holding rank q."""
    bounds = sorted(((math.inf if le == "+Inf" else float(le)), count) for le, count in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    total = bounds[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # in the +Inf bucket: the highest finite bound
            if count == lower_count:
                return bound
            if lower_bound > bound:  # a first bucket with a negative bound
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def run_query(query: Query) -> dict:
    """Invalid (on `agg`) when the metric's type does not support the aggregation asked for."""
    series = series_queryset(
        organization_id=query.organization_id, name=query.name, agent_id=query.agent_id, labels=query.labels
    )
    kind = query.kind or series.values_list("type", flat=True).first()
    allowed = HISTOGRAM_AGGS if kind == "histogram" else SAMPLE_AGGS
    if kind is not None and query.agg not in allowed:
        raise Invalid(details={"agg": f"a {kind} supports {', '.join(allowed)}"})

    grouped: dict[tuple, list] = defaultdict(list)
    if kind == "histogram" and query.agg in QUANTILES:
        for (group, bucket), buckets in _histogram_buckets(query, series).items():
            value = quantile(QUANTILES[query.agg], buckets)
            if value is not None:
                grouped[group].append([int(bucket), value])
    else:
        for (group, bucket), row in _bucket_rows(query, series, kind).items():
            grouped[group].append([int(bucket), _aggregate(query, kind, row)])

    result_series = []
    for group, points in grouped.items():
        labels = {key: ("" if value is None else str(value)) for key, value in zip(query.group_by, group, strict=True)}
        result_series.append({"labels": labels, "points": sorted(points)})
    result_series.sort(key=lambda item: sorted(item["labels"].items()))
    return {
        "name": query.name,
        "type": kind,
        "step": query.step,
        "agg": query.agg,
        "series": result_series,
        "warnings": _warnings(query, series, kind),
    }


def _warnings(query: Query, series, kind: str | None) -> list[str]:
    """Why an answer may be empty or flat where a person expected something."""
    if kind is None:
        exists = Series.objects.filter(organization_id=query.organization_id, name=query.name).exists()
        if not exists:
            return [f"no metric named {query.name} in this organization (GET /api/v1/metrics/names lists them)"]
        return ["no series of this metric matches the agent_id and label filters"]
    warnings = []
    for key in query.group_by:
        if key != "agent_id" and not series.filter(**{"labels__has_key": key}).exists():
            warnings.append(f'no series of {query.name} has the label {key}: every point is grouped under {key}=""')
    return warnings


def _samples(query: Query, series, start: int, end: int):
    """Samples of the series in [start, end) seconds, with their bucket and group keys annotated."""
    samples = Sample.objects.filter(series__in=series.values("id"), ts__gte=start * 1000, ts__lt=end * 1000)
    samples = samples.annotate(bucket=(F("ts") / Value(query.step * 1000)) * Value(query.step))
    groups = _group_expressions(query.group_by)
    if groups:
        samples = samples.annotate(**groups)
    return samples, ["bucket", *groups]


def _histogram_buckets(query: Query, series) -> dict[tuple, dict]:
    samples, keys = _samples(query, series, query.start, query.end)
    merged: dict[tuple, dict] = defaultdict(dict)
    for row in samples.values(*keys, "buckets").order_by():
        target = (tuple(row[key] for key in keys[1:]), row["bucket"])
        merged[target] = buckets_add(merged[target], row["buckets"] or {})
    return merged


def _uses_rollups(query: Query, kind: str | None) -> bool:
    """Counter and gauge queries over whole-minute steps that filter and group by agent at most."""
    return (
        kind in ("counter", "gauge")
        and query.step % 60 == 0
        and not query.labels
        and set(query.group_by) <= {"agent_id"}
    )


def _either(pick, a, b):
    return b if a is None else a if b is None else pick(a, b)


def _bucket_rows(query: Query, series, kind: str | None) -> dict[tuple, dict]:
    """(group, bucket) → {s, n, lo, hi, observations}: from rollups for the whole minutes of the
    range where they apply, and from the samples themselves for the rest."""
    rows: dict[tuple, dict] = {}

    def merge(group, bucket, s, n, lo, hi, observations):
        row = rows.get((group, bucket))
        if row is None:
            rows[(group, bucket)] = {"s": s or 0.0, "n": n, "lo": lo, "hi": hi, "observations": observations or 0}
            return
        row["s"] += s or 0.0
        row["n"] += n
        row["lo"] = _either(min, row["lo"], lo)
        row["hi"] = _either(max, row["hi"], hi)
        row["observations"] += observations or 0

    raw_ranges = [(query.start, query.end)]
    if _uses_rollups(query, kind):
        first, last = -(-query.start // 60) * 60, query.end // 60 * 60
        if first < last:
            raw_ranges = [(query.start, first), (last, query.end)]
            rollups = Rollup.objects.filter(
                organization_id=query.organization_id, name=query.name, minute__gte=first, minute__lt=last
            )
            if query.agent_id:
                rollups = rollups.filter(agent_id=query.agent_id)
            keys = ["agent_id"] if query.group_by else []
            aggregated = (
                rollups.annotate(bucket=(F("minute") / Value(query.step)) * Value(query.step))
                .values("bucket", *keys)
                .order_by()
                .annotate(s=Sum("sum"), n=Sum("count"), lo=Min("min"), hi=Max("max"))
            )
            for row in aggregated:
                merge(tuple(row[key] for key in keys), row["bucket"], row["s"], row["n"], row["lo"], row["hi"], 0)

    for start, end in raw_ranges:
        if start >= end:
            continue
        samples, keys = _samples(query, series, start, end)
        aggregated = (
            samples.values(*keys)
            .order_by()
            .annotate(s=Sum("value"), n=Count("id"), lo=Min("value"), hi=Max("value"), observations=Sum("count"))
        )
        for row in aggregated:
            group = tuple(row[key] for key in keys[1:])
            merge(group, row["bucket"], row["s"], row["n"], row["lo"], row["hi"], row["observations"])
    return rows


def _aggregate(query: Query, kind: str, row: dict) -> float:
    if kind == "histogram":
        return float(row["observations"] or 0) if query.agg == "count" else float(row["s"] or 0)
    agg = query.agg
    if agg == "sum":
        return row["s"]
    if agg == "rate":
        return row["s"] / query.step
    if agg == "avg":
        return row["s"] / row["n"] if row["n"] else 0.0
    if agg == "min":
        return row["lo"]
    if agg == "max":
        return row["hi"]
    return float(row["n"])


def names(*, organization_id):
    return (
        Series.objects.filter(organization_id=organization_id)
        .values("name", "type")
        .annotate(series=Count("id"), last_sample_at=Max("last_sample_at"))
        .order_by("name", "type")
    )


def label_keys(*, organization_id, name: str, scan: int = 200) -> list[str]:
    """The label names the series of metric `name` have (of the first `scan` series), sorted."""
    keys: set[str] = set()
    rows = Series.objects.filter(organization_id=organization_id, name=name).values_list("labels", flat=True)
    for labels in rows.order_by("id")[:scan]:
        keys.update(labels or {})
    return sorted(keys)


def agents_with_metric(*, organization_id, name: str, limit: int, include=None):
    """(id, name) of the first `limit` agents by name that have series of metric `name`, and the
    agent `include` (an id) wherever it is in that order."""
    # From the metric's series (its (organization, name) index) to their agents: a plan that does
    # not depend on the tables' statistics (a semi-join from the agents can cost a second on a
    # freshly loaded fleet).
    found = list(
        Series.objects.filter(organization_id=organization_id, name=name)
        .values_list("agent_id", "agent__name")
        .distinct()
        .order_by("agent__name", "agent_id")[:limit]
    )
    if include and all(str(agent_id) != str(include) for agent_id, _name in found):
        with contextlib.suppress(ValueError, ValidationError):  # not an id: the form says so beside the field
            found += list(Agent.objects.filter(organization_id=organization_id, pk=include).values_list("id", "name"))
    return found


def agent_metric_names(*, agent, limit: int):
    """The metric names (and types) of one agent, by name: at most `limit`, and how many there are."""
    names = Series.objects.filter(agent=agent).values("name", "type").distinct().order_by("name", "type")
    found = list(names[:limit])
    total = len(found) if len(found) < limit else names.count()
    return found, total


# --- Prometheus text exposition ------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(series: Series, extra: dict | None = None) -> str:
    pairs = {}
    for key, value in series.labels.items():
        pairs["exported_" + key if key in ("agent", "agent_id", "le") else key] = value
    pairs["agent_id"] = str(series.agent_id)
    pairs["agent"] = series.agent.name
    if extra:
        pairs.update(extra)
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in pairs.items()) + "}"


def _rule_descriptions(organization_id) -> dict[str, str]:
    """Metric name → the description its rule gives (the first rule that names one)."""
    descriptions: dict[str, str] = {}
    for rules in (
        MetricConfig.objects.filter(organization_id=organization_id)
        .order_by("name", "id")
        .values_list("metrics", flat=True)
    ):
        for rule in rules or []:
            if isinstance(rule, dict) and rule.get("description") and rule.get("name") not in descriptions:
                descriptions[rule["name"]] = rule["description"]
    return descriptions


def _help(text: str) -> str:
    """A HELP line's text, escaped as the exposition format wants (backslash and newline)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def export_lines(*, organization_id):
    """Every series of the organization in the Prometheus text format (version 0.0.4)."""
    queryset = (
        Series.objects.filter(organization_id=organization_id)
        .select_related("agent")
        .filter(~Q(last_sample_at=None))
        .order_by("name", "agent__name", "id")
    )
    descriptions = _rule_descriptions(organization_id)
    current, kind = None, None
    for series in queryset.iterator(chunk_size=2000):
        if series.name != current:
            current, kind = series.name, series.type
            help_text = descriptions.get(series.name) or f"{series.type} {series.name}, extracted from logs by LogFleet"
            yield f"# HELP {series.name} {_help(help_text)}\n"
            yield f"# TYPE {series.name} {series.type}\n"
        if series.type != kind:
            continue  # one name, one type in an exposition; the first agent's type wins
        if series.type == "counter":
            yield f"{series.name}{_labels(series)} {_number(series.total)}\n"
        elif series.type == "gauge":
            yield f"{series.name}{_labels(series)} {_number(series.last_value)}\n"
        else:
            buckets = sorted(
                ((math.inf if le == "+Inf" else float(le)), le, count) for le, count in series.histogram_buckets.items()
            )
            for _bound, le, count in buckets:
                yield f"{series.name}_bucket{_labels(series, {'le': le})} {_number(count)}\n"
            yield f"{series.name}_sum{_labels(series)} {_number(series.histogram_sum)}\n"
            yield f"{series.name}_count{_labels(series)} {_number(series.histogram_count)}\n"
