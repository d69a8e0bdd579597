"""The metric explorer's and the agent panel's charts: what a person picks on the page, turned into
the query API's own parameters (validated by metrics.query_params, run by metrics.selectors), and
the answer shaped for the dashboard's chart module (logfleet/static/logfleet/charts.js).

A page adds only what a person needs and an API client does not: preset ranges, a step chosen
for the range, a default aggregation per metric type, and p50/p90/p99 together for a histogram.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from logfleet import clock
from metrics import query_params, selectors

RANGES = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
RANGE_CHOICES = [
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("custom", "Custom"),
]
DEFAULT_RANGE = "1h"
# A step chosen for the range gives at most this many points per line: enough to read, few to draw.
# It is never below a minute, the agents' default push interval (finer buckets would mostly be empty).
TARGET_POINTS = 360
STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
# "quantiles" is the page's own choice for a histogram: its p50, p90 and p99 as three lines.
QUANTILES = "quantiles"
DEFAULT_AGG = {"counter": "sum", "gauge": "avg", "histogram": QUANTILES}
# Aggregations whose empty bucket means zero (nothing matched), not "no data".
ZERO_WHEN_EMPTY = {"counter": ("sum", "count", "rate"), "histogram": ("count", "sum")}
# A datetime-local input's value (no offset): the page labels those fields UTC.
_LOCAL_INPUT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?\Z")


def agg_choices(kind: str | None) -> list[tuple[str, str]]:
    if kind == "histogram":
        return [(QUANTILES, "p50/p90/p99"), *((agg, agg) for agg in selectors.HISTOGRAM_AGGS)]
    return [(agg, agg) for agg in selectors.SAMPLE_AGGS]


def auto_step(seconds: int) -> int:
    for step in STEPS:
        if seconds / step <= TARGET_POINTS:
            return step
    return STEPS[-1]


def _as_utc(value: str) -> str:
    value = value.strip()
    return value + "Z" if _LOCAL_INPUT.match(value) else value


def _local_input(seconds: int) -> str:
    """Unix seconds as a datetime-local input's value, in UTC."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M" if moment.second == 0 else "%Y-%m-%dT%H:%M:%S")


@dataclass
class Chart:
    """One figure: the metric's name (its caption) and what charts.js draws."""

    name: str
    kind: str | None
    agg: str
    step: int
    start: int
    end: int
    lines: list[dict] = field(default_factory=list)  # [{"label", "points": [[ts, value]]}]
    warnings: list[str] = field(default_factory=list)

    @property
    def data(self) -> dict:
        zero = self.agg in ZERO_WHEN_EMPTY.get(self.kind or "", ())
        return {
            "name": self.name,
            "type": self.kind,
            "agg": self.agg,
            "step": self.step,
            "start": self.start,
            "end": self.end,
            "fill": 0 if zero else None,
            "series": self.lines,
        }

    @property
    def data_json(self) -> str:
        """`data` for the figure's data-series attribute: htmx drops <script> elements, even
        json_script's, from what it swaps in (allowScriptTags is off)."""
        return json.dumps(self.data, separators=(",", ":"))

    @property
    def empty(self) -> bool:
        return not any(line["points"] for line in self.lines)


def _line_label(agg: str, labels: dict, *, several_aggs: bool) -> str:
    """A line's legend: its group's labels (and its quantile), or the aggregation of all series."""
    words = " ".join(f"{key}={value}" for key, value in labels.items())
    return " ".join(part for part in (agg if several_aggs else "", words) if part) or agg


def chart(*, organization_id, params: dict, kind: str | None, kind_known: bool = False) -> Chart:
    """Run validated query parameters (query_check's output, `agg` possibly QUANTILES) as the
    query API runs them; a histogram's QUANTILES are three queries, one line each per group.
    `kind_known`: `kind` was read from the very series the parameters select (an agent's own).
    Raises Invalid (on agg) like the API for an aggregation the metric's type does not have."""
    aggs = ("p50", "p90", "p99") if params["agg"] == QUANTILES else (params["agg"],)
    result = Chart(
        name=params["name"],
        kind=kind,
        agg=params["agg"],
        step=params["step"],
        start=params["start"],
        end=params["end"],
    )
    for agg in aggs:
        answer = selectors.run_query(
            selectors.Query(
                organization_id=organization_id,
                name=params["name"],
                start=params["start"],
                end=params["end"],
                step=params["step"],
                agg=agg,
                group_by=params["group_by"],
                agent_id=params.get("agent_id"),
                labels=params.get("label", ()),
                kind=kind if kind_known else None,
            )
        )
        result.kind = answer["type"]
        for series in answer["series"]:
            label = _line_label(agg, series["labels"], several_aggs=len(aggs) > 1)
            result.lines.append({"label": label, "points": series["points"]})
        result.warnings.extend(warning for warning in answer["warnings"] if warning not in result.warnings)
    return result


@dataclass
class Choice:
    """What the explorer's form says, resolved: the values to show in it, the query parameters to
    run (None when something is wrong) and the problems by form field."""

    values: dict
    params: dict | None
    errors: dict[str, str]


def resolve(get, *, kinds: dict[str, str]) -> Choice:
    """The explorer's query string → the query API's parameters, validated by its own serializer.

    `kinds` maps the organization's metric names to their types (the first name is the default).
    Form fields: name, range (a RANGES key or "custom" with start and end), step (blank: chosen
    for the range), agg (blank: the type's default), group_by, agent_id, and for_name: the metric
    the form showed, whose agg and label grouping do not carry over to another one."""
    name = get.get("name") or next(iter(kinds), "")
    kind = kinds.get(name)
    values = {
        "name": name,
        "range": get.get("range") or ("custom" if get.get("start") else DEFAULT_RANGE),
        "start": get.get("start", ""),
        "end": get.get("end", ""),
        "step": get.get("step", "").strip(),
        "group_by": get.get("group_by", "").strip(),
        "agent_id": get.get("agent_id", "").strip(),
    }
    # An aggregation or a label chosen for another metric (the person switched metrics) is dropped.
    chosen = get.get("agg", "")
    same_metric = get.get("for_name", name) == name
    values["agg"] = chosen if chosen and same_metric else DEFAULT_AGG.get(kind or "", "sum")
    if not same_metric and values["group_by"] != "agent_id":
        values["group_by"] = ""

    errors: dict[str, str] = {}
    params: dict = {"name": name, "group_by": values["group_by"]}
    if values["agent_id"]:
        params["agent_id"] = values["agent_id"]
    if values["range"] == "custom":
        for key in ("start", "end"):
            if values[key].strip():
                params[key] = _as_utc(values[key])
            else:
                errors[key] = "required for a custom range"
        span = None
    elif values["range"] in RANGES:
        span = RANGES[values["range"]]
        # Up to the end of this minute (the one under way included): whole minutes, which the
        # query reads from its per-minute rollups instead of the samples themselves.
        params["end"] = (int(clock.unix()) // 60 + 1) * 60
        params["start"] = params["end"] - span
    else:
        errors["range"] = "must be one of " + ", ".join(RANGES) + " or custom"
        span = None
    if values["step"]:
        params["step"] = values["step"]
    elif span is None and "start" in params and "end" in params:
        span = query_params.span_seconds(params["start"], params["end"])
    if not values["step"] and span:
        params["step"] = auto_step(span)
    params["agg"] = "p50" if values["agg"] == QUANTILES else values["agg"]

    validated, problems = query_params.query_check(params)
    errors.update(problems)
    if errors:
        return Choice(values=values, params=None, errors=errors)
    validated["agg"] = values["agg"]
    # The window shown, in the custom range's fields: choosing "Custom" then starts from it.
    values["start"], values["end"] = _local_input(validated["start"]), _local_input(validated["end"])
    return Choice(values=values, params=validated, errors={})
