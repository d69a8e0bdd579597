"""Reads of metric data: series lookups, time-bucketed queries, the Prometheus export."""

import math
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, F, Max, Min, Q, Sum, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform

from metrics.models import Sample, Series

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


class UnsupportedAggregation(ValueError):
    pass


def run_query(query: Query) -> dict:
    series = series_queryset(
        organization_id=query.organization_id, name=query.name, agent_id=query.agent_id, labels=query.labels
    )
    kind = series.values_list("type", flat=True).first()
    allowed = HISTOGRAM_AGGS if kind == "histogram" else SAMPLE_AGGS
    if kind is not None and query.agg not in allowed:
        raise UnsupportedAggregation(f"a {kind} supports {', '.join(allowed)}")
    step_ms = query.step * 1000
    samples = Sample.objects.filter(
        series__in=series.values("id"), ts__gte=query.start * 1000, ts__lt=query.end * 1000
    ).annotate(bucket=(F("ts") / Value(step_ms)) * Value(query.step))
    groups = _group_expressions(query.group_by)
    if groups:
        samples = samples.annotate(**groups)
    keys = ["bucket", *groups]

    grouped: dict[tuple, list] = defaultdict(list)
    if kind == "histogram" and query.agg in QUANTILES:
        merged: dict[tuple, dict] = defaultdict(lambda: defaultdict(float))
        for row in samples.values(*keys, "buckets").order_by():
            group = tuple(row[key] for key in groups)
            target = merged[(group, row["bucket"])]
            for le, count in (row["buckets"] or {}).items():
                target[le] += count
        for (group, bucket), buckets in merged.items():
            value = quantile(QUANTILES[query.agg], buckets)
            if value is not None:
                grouped[group].append([int(bucket), value])
    else:
        rows = (
            samples.values(*keys)
            .order_by()
            .annotate(s=Sum("value"), n=Count("id"), lo=Min("value"), hi=Max("value"), observations=Sum("count"))
        )
        for row in rows:
            group = tuple(row[key] for key in groups)
            grouped[group].append([int(row["bucket"]), _aggregate(query, kind, row)])

    result_series = []
    for group, points in grouped.items():
        labels = {key: ("" if value is None else str(value)) for key, value in zip(query.group_by, group, strict=True)}
        result_series.append({"labels": labels, "points": sorted(points)})
    result_series.sort(key=lambda item: sorted(item["labels"].items()))
    return {"name": query.name, "type": kind, "step": query.step, "agg": query.agg, "series": result_series}


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


def export_lines(*, organization_id):
    """Every series of the organization in the Prometheus text format (version 0.0.4)."""
    queryset = (
        Series.objects.filter(organization_id=organization_id)
        .select_related("agent")
        .filter(~Q(last_sample_at=None))
        .order_by("name", "agent__name", "id")
    )
    current, kind = None, None
    for series in queryset.iterator(chunk_size=2000):
        if series.name != current:
            current, kind = series.name, series.type
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
