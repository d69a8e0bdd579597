"""Adding up histogram buckets whose bounds differ, so that totals stay cumulative.

A histogram sample's buckets are cumulative counts per upper bound (`{"0.1": 6, "0.5": 6,
"+Inf": 6}`), but the bounds are the agent's rule's, and a rule can change: bucket by bucket
addition of `{"0.5": 3, "+Inf": 3}` and `{"0.1": 6, "+Inf": 6}` would give `le=0.1` 6 and `le=0.5`
3, which Prometheus accepts and turns into wrong quantiles without a word.

Instead every map is read as the step function it is: its count at any bound `b` is its count at
its largest bound not above `b` (those observations are certainly at most `b`; 0 below its first
bound). Sums of such functions are step functions over the union of the bounds, non-decreasing, and
adding them up in any order or grouping gives the same totals: a series' totals, a query's time
bucket and a group of series all merge with `buckets_add`.

The union is bounded: when it would pass MAX_BOUNDS, the sum keeps the newer map's bounds only
(a coarser histogram, still exact at each bound it keeps).
"""

import math

from metrics import engine

MAX_BOUNDS = engine.MAX_BUCKETS + 1  # a rule's bounds and "+Inf"


def _bound(le: str) -> float:
    return math.inf if le == "+Inf" else float(le)


def _steps(buckets: dict) -> list[tuple[float, object]]:
    return sorted((_bound(le), count) for le, count in buckets.items())


def buckets_add(older: dict, newer: dict) -> dict:
    """The cumulative buckets of two histograms' observations together, `{le: count}` in bound order."""
    if older.keys() == newer.keys():
        return {le: older[le] + newer[le] for le in newer}
    if not older:
        return dict(newer)
    if not newer:
        return dict(older)
    bounds = set(older) | set(newer)
    if len(bounds) > MAX_BOUNDS:
        bounds = set(newer)
    result = {}
    steps = (_steps(older), _steps(newer))
    positions, counts = [0, 0], [0, 0]
    for bound, le in sorted((_bound(le), le) for le in bounds):
        for side, side_steps in enumerate(steps):
            while positions[side] < len(side_steps) and side_steps[positions[side]][0] <= bound:
                counts[side] = side_steps[positions[side]][1]
                positions[side] += 1
        result[le] = counts[0] + counts[1]
    return result
