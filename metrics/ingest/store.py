"""Storing the parsed samples of one batch: which are accepted (a name keeps its type, a family new
to the agent does not collide with the organization's in the Prometheus export (metrics.families),
an agent's names and each name's label sets are capped, a histogram series' running count fits a
bigint), the series they create (one query per batch, not per sample), the samples, the series'
running totals (one UPDATE for every touched series; histogram buckets add up by
metrics.histograms) and the per-minute rollups."""

from collections import defaultdict
from datetime import UTC, datetime

from django.conf import settings

from metrics.families import OrganizationFamilies
from metrics.histograms import buckets_add
from metrics.ingest import sql
from metrics.ingest.parse import ParsedSample
from metrics.models import Series

BIGINT_MAX = 2**63 - 1  # a histogram series' running count is a bigint


def _series_cap_error(name: str) -> str:
    cap = settings.METRIC_MAX_SERIES_PER_NAME
    return f"too many series for metric {name}: an agent may have at most {cap} label sets per metric name"


def store(agent, parsed: list[ParsedSample], errors: list[dict]) -> list[ParsedSample]:
    """Store what may be stored of `parsed` and return it; each sample refused is added to `errors`
    with its index and why."""
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
    families = None  # the organization's families near the batch's new ones, read when a batch brings one
    accepted, new_series = [], {}
    for sample in parsed:
        expected = types.get(sample.name)
        if expected is not None and expected != sample.type:
            errors.append(
                {"index": sample.index, "message": f"metric {sample.name} is a {expected}, not a {sample.type}"}
            )
            continue
        if expected is None:
            if families is None:
                wanted = {(s.name, s.type) for s in parsed if s.name not in types}
                families = OrganizationFamilies(organization_id=agent.organization_id, wanted=wanted)
            collision = families.collision(sample.name, sample.type)
            if collision is not None:
                errors.append({"index": sample.index, "message": collision})
                continue
            if names_count is None:
                names_count = Series.objects.filter(agent_id=agent.pk).values("name").distinct().count()
            if names_count >= names_cap:
                message = f"too many metric names: an agent may have at most {names_cap} ({sample.name} is new)"
                errors.append({"index": sample.index, "message": message})
                continue
            names_count += 1
        key = (sample.name, sample.labels_hash)
        if sample.count is not None and counts[key] + sample.count > BIGINT_MAX:
            message = f"histogram {sample.name}: the series' running count would pass {BIGINT_MAX}"
            errors.append({"index": sample.index, "message": message})
            continue
        if key not in existing and key not in new_series:
            if per_name[sample.name] >= cap:
                errors.append({"index": sample.index, "message": _series_cap_error(sample.name)})
                continue
            per_name[sample.name] += 1
            if sample.name not in types:
                families.add(sample.name, sample.type)
            types[sample.name] = sample.type
            new_series[key] = sample
        if sample.count is not None:
            counts[key] += sample.count
        accepted.append(sample)

    if new_series:
        existing.update(_create_series(agent, new_series))
    rows = [(existing[(s.name, s.labels_hash)], s) for s in accepted]
    sql.write_samples(rows)
    _update_series(rows)
    _update_rollups(agent, accepted)
    return accepted


def _create_series(agent, new_series: dict[tuple[str, str], ParsedSample]) -> dict[tuple[str, str], object]:
    """The ids of the new series by (name, labels hash); a concurrent batch may have created some."""
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
        ignore_conflicts=True,
    )
    new_names = {name for name, _hash in new_series}
    return {
        (name, hash_): series_id
        for series_id, name, hash_ in Series.objects.filter(agent_id=agent.pk, name__in=new_names).values_list(
            "id", "name", "labels_hash"
        )
    }


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
                "buckets": {},
            }
        if s.type == "counter":
            state["total"] += s.value
        elif s.type == "histogram":
            state["total"] += s.value
            state["count"] += s.count
            state["buckets"] = buckets_add(state["buckets"], s.buckets)
        if s.ts >= state["ts"]:
            state["ts"], state["last"] = s.ts, s.value

    deltas = []
    for series_id, state in sorted(touched.items(), key=lambda item: str(item[0])):
        moment = datetime.fromtimestamp(state["ts"] / 1000, tz=UTC)
        total_delta = state["total"] if state["type"] == "counter" else 0.0
        sum_delta = state["total"] if state["type"] == "histogram" else 0.0
        deltas.append((series_id, total_delta, state["count"], sum_delta, moment, state["last"]))
    sql.apply_series_deltas(deltas)

    histograms = {series_id: state["buckets"] for series_id, state in touched.items() if state["type"] == "histogram"}
    if histograms:
        for series in Series.objects.select_for_update().filter(pk__in=histograms).order_by("pk"):
            merged = buckets_add(series.histogram_buckets, histograms[series.pk])
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
    if minutes:
        sql.upsert_rollups(agent, minutes)
