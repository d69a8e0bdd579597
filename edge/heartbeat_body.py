"""Validation of heartbeat bodies, by hand: this is the hottest path of the service; and the answer.

A DRF serializer round trip costs more than the rest of a heartbeat; these checks are the
same rules with the same error envelope (dotted field paths): an Invalid naming each bad field.
"""

import json
import math
import uuid

from django.utils import timezone

from agents.models import SOURCE_STATES, AgentStatus, ConfigState
from logfleet.errors import Invalid
from streaming import selectors as stream_selectors

STATUSES = frozenset(AgentStatus.values)
STATES = frozenset(ConfigState.values)
MAX_METRICS_BYTES = 16 * 1024
MAX_METRICS_DEPTH = 3
MAX_CONFIG_ERRORS = 100
MAX_SOURCES = 100
MAX_COUNT = 2**62


def _string(value, field: str, max_length: int, errors: dict, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            errors[field] = "This field is required."
        return None
    if not isinstance(value, str):
        errors[field] = "must be a string"
    elif len(value) > max_length:
        errors[field] = f"must be at most {max_length} characters"
    elif required and not value:
        errors[field] = "may not be blank"
    else:
        return value
    return None


def _depth(value, level: int = 1) -> int:
    if isinstance(value, dict):
        return max([_depth(item, level + 1) for item in value.values()], default=level)
    if isinstance(value, list):
        return max([_depth(item, level + 1) for item in value], default=level)
    return level


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


def parse_uuid(value, field: str, errors: dict) -> uuid.UUID | None:
    """A UUID from a body or query string; a missing or malformed one is a 400 naming `field`."""
    if value is None:
        errors[field] = "This field is required."
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        errors[field] = "must be a UUID"
        return None


def answer(agent_id, config_hash: str) -> dict:
    """What an acknowledged heartbeat answers, over HTTP and over the agent's socket."""
    return {
        "status": "acknowledged",
        "server_time": timezone.now().isoformat().replace("+00:00", "Z"),
        "config_hash": config_hash,
        "streams": stream_selectors.agent_instructions(agent_id),
    }


def parse(data, *, with_agent_id: bool = False) -> dict:
    """The heartbeat's fields, validated; raises Invalid (400) naming each bad field."""
    if not isinstance(data, dict):
        raise Invalid(details={"non_field_errors": "the body must be a JSON object"})
    errors: dict[str, str] = {}
    result: dict = {}
    if with_agent_id:
        result["agent_id"] = parse_uuid(data.get("agent_id"), "agent_id", errors)

    status = data.get("status")
    if status is None:
        errors["status"] = "This field is required."
    elif not isinstance(status, str) or status not in STATUSES:
        errors["status"] = f"must be one of {', '.join(sorted(STATUSES))}"
    result["status"] = status
    result["version"] = _string(data.get("version"), "version", 64, errors)

    metrics = data.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, dict):
            errors["metrics"] = "must be an object"
        elif len(json.dumps(metrics)) > MAX_METRICS_BYTES:
            errors["metrics"] = f"must be at most {MAX_METRICS_BYTES} bytes of JSON"
        elif _depth(metrics) > MAX_METRICS_DEPTH:
            errors["metrics"] = f"may nest at most {MAX_METRICS_DEPTH} levels"
        elif not _finite(metrics):
            errors["metrics"] = "numbers must be finite"
    result["metrics"] = metrics

    report = data.get("config_status")
    result["config_report"] = None
    if report is not None:
        result["config_report"] = _parse_report(report, errors)

    sources = data.get("sources")
    result["sources"] = None if sources is None else _parse_sources(sources, errors)

    if errors:
        raise Invalid(details=errors)
    return result


def _count(value, field: str, errors: dict) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        errors[field] = f"must be an integer from 0 to {MAX_COUNT}"
        return 0
    return value


def _parse_sources(sources, errors: dict) -> list | None:
    if not isinstance(sources, list):
        errors["sources"] = "must be a list"
        return None
    if len(sources) > MAX_SOURCES:
        errors["sources"] = f"at most {MAX_SOURCES} sources"
        return None
    clean = []
    for index, item in enumerate(sources):
        prefix = f"sources.{index}"
        if not isinstance(item, dict):
            errors[prefix] = "must be an object"
            continue
        state = item.get("state")
        if not isinstance(state, str) or state not in SOURCE_STATES:
            errors[f"{prefix}.state"] = f"must be one of {', '.join(SOURCE_STATES)}"
        entry = {
            "name": _string(item.get("name"), f"{prefix}.name", 64, errors, required=True),
            "path": _string(item.get("path"), f"{prefix}.path", 4096, errors, required=True),
            "state": state,
            "lines": _count(item.get("lines", 0), f"{prefix}.lines", errors),
            "bytes": _count(item.get("bytes", 0), f"{prefix}.bytes", errors),
        }
        if item.get("error") is not None:
            entry["error"] = _string(item.get("error"), f"{prefix}.error", 1024, errors)
        clean.append(entry)
    return clean


def _parse_report(report, errors: dict) -> dict | None:
    if not isinstance(report, dict):
        errors["config_status"] = "must be an object"
        return None
    config_hash = _string(report.get("hash"), "config_status.hash", 64, errors, required=True)
    state = report.get("state")
    if not isinstance(state, str) or state not in STATES:
        errors["config_status.state"] = f"must be one of {', '.join(sorted(STATES))}"
    raw_errors = report.get("errors", [])
    clean_errors = []
    if not isinstance(raw_errors, list):
        errors["config_status.errors"] = "must be a list"
    elif len(raw_errors) > MAX_CONFIG_ERRORS:
        errors["config_status.errors"] = f"at most {MAX_CONFIG_ERRORS} errors"
    else:
        for index, item in enumerate(raw_errors):
            prefix = f"config_status.errors.{index}"
            if not isinstance(item, dict):
                errors[prefix] = "must be an object"
                continue
            entry = {"message": _string(item.get("message"), f"{prefix}.message", 1024, errors, required=True)}
            if item.get("config_id") is not None:
                entry["config_id"] = _string(item.get("config_id"), f"{prefix}.config_id", 64, errors)
            if item.get("metric") is not None:
                entry["metric"] = _string(item.get("metric"), f"{prefix}.metric", 128, errors)
            clean_errors.append(entry)
    return {"hash": config_hash, "state": state, "errors": clean_errors}
