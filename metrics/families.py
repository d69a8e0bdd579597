"""Metric families and the names they take in the Prometheus export, so that no two collide.

A counter or a gauge `x` is exported as `x`; a histogram `x` as the family `x` with the series
`x_bucket`, `x_sum` and `x_count`. Two families of one organization collide when they would take a
common name: a histogram `lat` and a counter `lat_count` would both export `lat_count` (promtool
refuses such an export; Prometheus keeps one of the two), a counter `lat` and a gauge `lat` would
both be `# TYPE lat`. Ingestion refuses a sample of a new family that collides with a family the
organization already has, and a config's rules are refused when they collide with each other, with
another config's rules or with the families agents already push.
"""

from collections.abc import Iterable

from metrics.models import Series

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_QUERY_CHUNK = 2000  # names per query (SQLite's bound on parameters is far above it)


def exported_names(name: str, kind: str) -> tuple[str, ...]:
    """The names family `name` of type `kind` takes in the export."""
    if kind == "histogram":
        return (name, *(name + suffix for suffix in HISTOGRAM_SUFFIXES))
    return (name,)


def neighbours(name: str, kind: str) -> set[str]:
    """Every family name that could collide with this family (the family's own included)."""
    names = set(exported_names(name, kind))
    for exported in tuple(names):
        for suffix in HISTOGRAM_SUFFIXES:
            if exported.endswith(suffix) and len(exported) > len(suffix):
                names.add(exported.removesuffix(suffix))  # a histogram of that name exports it
    return names


def shared_name(name: str, kind: str, other_name: str, other_kind: str) -> str | None:
    """The first name two different families would both take in the export, or None."""
    if (name, kind) == (other_name, other_kind):
        return None  # one family
    shared = set(exported_names(name, kind)) & set(exported_names(other_name, other_kind))
    return min(shared) if shared else None


def first_collision(name: str, kind: str, others: Iterable[tuple[str, str, str]]) -> str | None:
    """Why family (name, kind) collides with the first of `others` it collides with ((name, kind,
    where it is) of other families), naming both; None when it collides with none."""
    for other_name, other_kind, where in others:
        shared = shared_name(name, kind, other_name, other_kind)
        if shared is not None:
            return (
                f"{kind} {name} collides with the {other_kind} {other_name} {where}: both would be exported as "
                f"{shared} (choose another name)"
            )
    return None


class OrganizationFamilies:
    """The families (name → types) an organization has series of, among the neighbours of `wanted`
    (one query per 2 000 names), and the ones added since; `collision` says whether a family may join."""

    def __init__(self, *, organization_id, wanted: Iterable[tuple[str, str]]):
        candidates = sorted(set().union(*(neighbours(name, kind) for name, kind in wanted)))
        self.types: dict[str, set[str]] = {}
        for start in range(0, len(candidates), _QUERY_CHUNK):
            chunk = candidates[start : start + _QUERY_CHUNK]
            rows = (
                Series.objects.filter(organization_id=organization_id, name__in=chunk)
                .values_list("name", "type")
                .distinct()
                .order_by()
            )
            for name, kind in rows:
                self.types.setdefault(name, set()).add(kind)

    def collision(self, name: str, kind: str) -> str | None:
        """Why family (name, kind) may not join the organization's, or None."""
        if kind in self.types.get(name, ()):
            return None  # the family exists: its series join it (whatever collisions older data holds)
        others = (
            (other_name, other_kind, "of this organization")
            for other_name in sorted(neighbours(name, kind))
            for other_kind in sorted(self.types.get(other_name, ()))
        )
        return first_collision(name, kind, others)

    def add(self, name: str, kind: str) -> None:
        self.types.setdefault(name, set()).add(kind)
