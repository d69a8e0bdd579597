"""One interval's matches as the samples the agent pushes."""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate

from metrics.engine.matching import Match


class Aggregator:
    """Matches of one interval, as samples: counter increments, the last gauge value, and
    histogram count/sum/cumulative buckets (Prometheus style, "+Inf" included).

    With `max_series`, the series past the first `max_series` met are left out and only counted
    (`omitted`), so that what it holds stays bounded."""

    def __init__(self, max_series: int | None = None):
        self._series: dict[tuple, dict] = {}
        self._max_series = max_series
        self._omitted: set[int] = set()  # hashes of the keys left out: a count, not their labels

    def __len__(self):
        return len(self._series)

    @property
    def omitted(self) -> int:
        return len(self._omitted)

    def add(self, match: Match) -> None:
        key = (match.metric, tuple(sorted(match.labels.items())))
        state = self._series.get(key)
        if state is None:
            if self._max_series is not None and len(self._series) >= self._max_series:
                self._omitted.add(hash(key))
                return
            state = self._series[key] = {"type": match.type, "labels": dict(match.labels)}
            if match.type == "counter":
                state["value"] = 0.0
            elif match.type == "histogram":
                # counts[i]: the observations in (bounds[i-1], bounds[i]], the last one above every
                # bound; flush() makes them cumulative.
                state.update(count=0, sum=0.0, bounds=match.buckets, counts=[0] * (len(match.buckets) + 1))
        kind = match.type
        if kind == "counter":
            state["value"] += match.value
        elif kind == "gauge":
            state["value"] = match.value
        else:
            state["count"] += 1
            state["sum"] += match.value
            state["counts"][bisect_left(state["bounds"], match.value)] += 1

    def flush(self, timestamp: float) -> list[dict]:
        """The interval's samples at `timestamp` (Unix seconds), and a fresh interval."""
        samples = []
        for (name, _labels), state in sorted(self._series.items(), key=lambda item: item[0]):
            sample = {"name": name, "type": state["type"], "labels": state["labels"], "timestamp": timestamp}
            if state["type"] == "histogram":
                cumulative = accumulate(state["counts"][:-1])
                buckets = {format_bound(b): c for b, c in zip(state["bounds"], cumulative, strict=True)}
                buckets["+Inf"] = state["count"]
                sample["histogram"] = {"count": state["count"], "sum": state["sum"], "buckets": buckets}
            else:
                sample["value"] = state["value"]
            samples.append(sample)
        self._series, self._omitted = {}, set()
        return samples


def format_bound(bound: float) -> str:
    """A bucket bound as Prometheus writes `le`: 0.5, 1, 2.5 (no trailing .0)."""
    return repr(float(bound)).removesuffix(".0") if float(bound).is_integer() else repr(float(bound))
