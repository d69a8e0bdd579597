"""Storing a validated batch: which of its series are accepted (a name keeps its type, a family new
to the agent does not collide with the organization's in the Prometheus export (metrics.families),
an agent's names and each name's label sets are capped, a histogram series' running count fits a
bigint), the series it creates (one query per batch, not per sample), the samples, the series'
running totals (one UPDATE for every touched series; histogram buckets add up by
metrics.histograms) and the per-minute rollups.

Series ids come from a per-process cache of committed series, keyed by (agent, name, labels hash),
so a batch of known series reads nothing before it writes. The database stays the truth: the
totals UPDATE, which runs before the samples are written, must find every series the batch names;
one that is gone (its agent deleted, say) makes ingest forget the agent's entries and store the
batch again from what the database holds."""

import time
from collections import defaultdict

from django.conf import settings
from django.db import transaction

from metrics.families import OrganizationFamilies
from metrics.histograms import buckets_add
from metrics.ingest import sql
from metrics.ingest.parse import Batch, Group
from metrics.models import Series

BIGINT_MAX = 2**63 - 1  # a histogram series' running count is a bigint


class StaleSeries(Exception):
    """A cached series is no longer in the database."""


class SeriesCache:
    """(agent id, name, labels hash) → (series id, type) of series that were committed. Bounded:
    when full it starts over (the database answers the misses)."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: dict[tuple, tuple] = {}

    def get(self, key: tuple) -> tuple | None:
        return self._entries.get(key)

    def add(self, entries: dict[tuple, tuple]) -> None:
        if len(self._entries) + len(entries) > self.max_entries:
            self._entries = {}
        self._entries.update(entries)

    def forget_agent(self, agent_id) -> None:
        self._entries = {key: value for key, value in self._entries.items() if key[0] != agent_id}


series_cache = SeriesCache(max_entries=200_000)


def _series_cap_error(name: str) -> str:
    cap = settings.METRIC_MAX_SERIES_PER_NAME
    return f"too many series for metric {name}: an agent may have at most {cap} label sets per metric name"


def store(agent, batch: Batch, *, use_cache: bool = True, timings: dict | None = None) -> None:
    """Store what may be stored of `batch`; each sample refused is added to its errors with its index
    and why. StaleSeries when a cached series is gone (the caller rolls back what was written)."""
    clock = _Clock(timings)
    ids = _accept(agent, batch, use_cache)
    if not batch.groups:
        return
    _update_series(batch.groups, ids)
    _update_rollups(agent, batch.groups)
    clock.lap("series")
    sql.write_samples([(ids[_key(group)], group.rows) for group in batch.groups])
    clock.lap("copy")


def _key(group: Group) -> tuple[str, str]:
    return (group.name, group.hash)


def _accept(agent, batch: Batch, use_cache: bool) -> dict[tuple[str, str], object]:
    """Refuse the groups storage refuses; the series id of each accepted group by (name, hash)."""
    ids: dict[tuple[str, str], object] = {}
    types: dict[str, str] = {}
    missed = set()
    for group in batch.groups:
        cached = series_cache.get((agent.pk, group.name, group.hash)) if use_cache else None
        if cached is None or cached[1] != group.type:
            missed.add(group.name)
        else:
            ids[_key(group)] = cached[0]
            types.setdefault(group.name, cached[1])

    per_name: dict[str, int] = defaultdict(int)
    counts: dict[tuple[str, str], int] = {}  # histogram series' running counts
    if missed:  # the database's word on every name that has a series the cache does not know
        for series_id, name, kind, hash_, count in Series.objects.filter(
            agent_id=agent.pk, name__in=missed
        ).values_list("id", "name", "type", "labels_hash", "histogram_count"):
            ids[(name, hash_)] = series_id
            types[name] = kind
            per_name[name] += 1
            counts[(name, hash_)] = count
    cached_histograms = {
        ids[key]: key
        for key in (_key(group) for group in batch.groups if group.type == "histogram")
        if key in ids and key not in counts
    }
    if cached_histograms:
        for series_id, count in Series.objects.filter(pk__in=cached_histograms).values_list("id", "histogram_count"):
            counts[cached_histograms[series_id]] = count

    cap, names_cap = settings.METRIC_MAX_SERIES_PER_NAME, settings.METRIC_MAX_NAMES_PER_AGENT
    names_count = None  # the agent's metric names, counted when a batch brings a new one
    families = None  # the organization's families near the batch's new ones, read when a batch brings one
    new_series: dict[tuple[str, str], Group] = {}
    # In the order each series' first sample came, as the samples would be taken one by one.
    for group in list(batch.groups):
        expected = types.get(group.name)
        if expected is not None and expected != group.type:
            batch.refuse(group, f"metric {group.name} is a {expected}, not a {group.type}")
            continue
        if expected is None:
            if families is None:
                wanted = {(g.name, g.type) for g in batch.groups if g.name not in types}
                families = OrganizationFamilies(organization_id=agent.organization_id, wanted=wanted)
            collision = families.collision(group.name, group.type)
            if collision is not None:
                batch.refuse(group, collision)
                continue
            if names_count is None:
                names_count = Series.objects.filter(agent_id=agent.pk).values("name").distinct().count()
            if names_count >= names_cap:
                message = f"too many metric names: an agent may have at most {names_cap} ({group.name} is new)"
                batch.refuse(group, message)
                continue
            names_count += 1
        key = _key(group)
        if key not in ids and key not in new_series:
            if per_name[group.name] >= cap:
                batch.refuse(group, _series_cap_error(group.name))
                continue
            per_name[group.name] += 1
            if group.name not in types:
                families.add(group.name, group.type)
            types[group.name] = group.type
            new_series[key] = group
        if group.type == "histogram" and counts.get(key, 0) + group.count > BIGINT_MAX:
            _cap_running_count(batch, group, counts.get(key, 0))

    if new_series:
        created = _create_series(agent, new_series)
        ids.update(created)
    accepted = {
        (agent.pk, group.name, group.hash): (ids[_key(group)], group.type) for group in batch.groups if group.indexes
    }
    transaction.on_commit(lambda: series_cache.add(accepted))
    return ids


def _cap_running_count(batch: Batch, group: Group, running: int) -> None:
    """Refuse the samples past which the series' running count would leave a bigint, and gather the
    group's totals again from the others."""
    message = f"histogram {group.name}: the series' running count would pass {BIGINT_MAX}"
    kept = []
    for index, row, sample in zip(group.indexes, group.rows, group.histograms, strict=True):
        if running + sample[2] > BIGINT_MAX:
            batch.errors.append({"index": index, "message": message})
            continue
        running += sample[2]
        kept.append((index, row, sample))
    if not kept:
        batch.groups.remove(group)
        return
    group.indexes, group.rows, group.histograms = (list(column) for column in zip(*kept, strict=True))
    group.total, group.count, group.buckets, group.ts = 0.0, 0, {}, -1
    for ts, total, count, buckets in group.histograms:
        group.total += total
        group.count += count
        group.buckets = buckets_add(group.buckets, buckets)
        if ts >= group.ts:
            group.ts, group.last = ts, total


def _create_series(agent, new_series: dict[tuple[str, str], Group]) -> dict[tuple[str, str], object]:
    """The ids of the new series by (name, labels hash); a concurrent batch may have created some."""
    Series.objects.bulk_create(
        [
            Series(
                organization_id=agent.organization_id,
                agent_id=agent.pk,
                name=group.name,
                type=group.type,
                labels=group.labels,
                labels_hash=group.hash,
            )
            for group in new_series.values()
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


def _update_series(groups: list[Group], ids: dict) -> None:
    """Running totals and the latest sample of each touched series; StaleSeries when one is gone."""
    deltas = []
    for group in groups:
        total_delta = group.total if group.type == "counter" else 0.0
        sum_delta = group.total if group.type == "histogram" else 0.0
        deltas.append((ids[_key(group)], total_delta, group.count, sum_delta, group.ts, group.last))
    deltas.sort(key=lambda delta: delta[0])  # rows locked in one order by every batch
    if sql.apply_series_deltas(deltas) != len(deltas):
        raise StaleSeries

    histograms = {ids[_key(group)]: group.buckets for group in groups if group.type == "histogram"}
    if histograms:
        for series in Series.objects.select_for_update().filter(pk__in=histograms).order_by("pk"):
            merged = buckets_add(series.histogram_buckets, histograms[series.pk])
            Series.objects.filter(pk=series.pk).update(histogram_buckets=merged)


def _update_rollups(agent, groups: list[Group]) -> None:
    """Fold counter and gauge samples into the per-minute rollups (one upsert per name and minute)."""
    minutes: dict[tuple[str, int], list] = {}
    for group in groups:
        for minute, (total, count, low, high) in group.minutes.items():
            state = minutes.get((group.name, minute))
            if state is None:
                minutes[(group.name, minute)] = [total, count, low, high]
            else:
                state[0] += total
                state[1] += count
                state[2] = min(state[2], low)
                state[3] = max(state[3], high)
    if minutes:
        sql.upsert_rollups(agent, minutes)


class _Clock:
    """Time spent per stage of a batch, for bench_metrics (nothing when `timings` is None)."""

    def __init__(self, timings: dict | None):
        self._timings = timings
        self._last = time.perf_counter() if timings is not None else 0.0

    def lap(self, stage: str) -> None:
        if self._timings is not None:
            now = time.perf_counter()
            self._timings[stage] = self._timings.get(stage, 0.0) + now - self._last
            self._last = now
