"""The agent configuration: its rule, defaults and content hash (API.md section 3).

`clean_config` is the one rule for what a config may hold. Plain Python: the agents service calls it
where a config is written, the API's serializer through a `RuleField` (agents.serializers), and its
messages are DRF's own words for the same problems, so the error envelope reads as it always has.
"""

import hashlib
import json
import re

from logfleet.errors import Invalid

DEFAULTS = {
    "log_sources": [],
    "heartbeat_interval_seconds": 30,
    "metrics_interval_seconds": 60,
    "retention_hours": 168,
}
# Each number of the config: its lowest and highest value.
BOUNDS = {
    "heartbeat_interval_seconds": (5, 300),
    "metrics_interval_seconds": (10, 3600),
    "retention_hours": (1, 8760),
}
MAX_LOG_SOURCES = 50
SOURCE_NAME_RE = re.compile(r"^[a-z0-9_-]{1,64}\Z")
SOURCE_NAME_RULE = "must be 1 to 64 of a-z, 0-9, _ and -"
SOURCE_PATH_MAX = 4096
SOURCE_FORMATS = ("text", "json")
SOURCE_KEYS = ("name", "path", "format")

REQUIRED = "This field is required."
NULL = "This field may not be null."
_DECIMAL_ZEROS = re.compile(r"\.0*\s*$")  # 30.0 and "30" are the integer 30, as DRF reads them


def default_config() -> dict:
    return json.loads(json.dumps(DEFAULTS))


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def normalize(config: dict) -> dict:
    """The whole config with defaults filled in (for configs stored before a key was added)."""
    return {**default_config(), **config}


class _Refused(Exception):
    def __init__(self, problem: str):
        self.problem = problem


def _not_an_object(value) -> str:
    return f"Invalid data. Expected a dictionary, but got {type(value).__name__}."


def _unknown(data: dict, known, prefix: str) -> dict[str, str]:
    """Keys a config does not know: a typo must not be silently ignored."""
    return {f"{prefix}{key}": "unknown key" for key in sorted(set(data) - set(known), key=str)}


def _text(value, *, max_length: int | None = None) -> str:
    if value is None:
        raise _Refused(NULL)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Refused("Not a valid string.")
    text = str(value).strip()
    if not text:
        raise _Refused("This field may not be blank.")
    if "\x00" in text:
        raise _Refused("Null characters are not allowed.")
    if max_length is not None and len(text) > max_length:
        raise _Refused(f"Ensure this field has no more than {max_length} characters.")
    return text


def _integer(value, low: int, high: int) -> int:
    if value is None:
        raise _Refused(NULL)
    if isinstance(value, str) and len(value) > 1000:
        raise _Refused("String value too large.")
    try:
        number = int(_DECIMAL_ZEROS.sub("", str(value)))
    except (ValueError, TypeError):
        raise _Refused("A valid integer is required.") from None
    if number > high:
        raise _Refused(f"Ensure this value is less than or equal to {high}.")
    if number < low:
        raise _Refused(f"Ensure this value is greater than or equal to {low}.")
    return number


def _source(item, path: str, errors: dict) -> dict | None:
    if not isinstance(item, dict):
        errors[path] = NULL if item is None else _not_an_object(item)
        return None
    unknown = _unknown(item, SOURCE_KEYS, f"{path}.")
    if unknown:
        errors.update(unknown)
        return None
    clean, failed = {}, False
    for key in SOURCE_KEYS:
        try:
            if key == "format":
                value = item.get("format", "text")
                if value is None:
                    raise _Refused(NULL)
                if str(value) not in SOURCE_FORMATS:
                    raise _Refused(f'"{value}" is not a valid choice.')
                clean[key] = str(value)
                continue
            if key not in item:
                raise _Refused(REQUIRED)
            if key == "name":
                raw = item["name"]
                if raw is not None and (isinstance(raw, bool) or not isinstance(raw, (str, int, float))):
                    raise _Refused(SOURCE_NAME_RULE)
                name = _text(raw)
                if not SOURCE_NAME_RE.match(name):
                    raise _Refused(SOURCE_NAME_RULE)
                clean[key] = name
            else:
                file_path = _text(item["path"], max_length=SOURCE_PATH_MAX)
                if not file_path.startswith("/"):
                    raise _Refused("must be an absolute path")
                clean[key] = file_path
        except _Refused as refused:
            errors[f"{path}.{key}"] = refused.problem
            failed = True
    return None if failed else clean


def _log_sources(value, errors: dict) -> list | None:
    if value is None:
        errors["log_sources"] = NULL
        return None
    if not isinstance(value, list):
        errors["log_sources"] = f'Expected a list of items but got type "{type(value).__name__}".'
        return None
    if len(value) > MAX_LOG_SOURCES:
        errors["log_sources"] = f"Ensure this field has no more than {MAX_LOG_SOURCES} elements."
        return None
    before = len(errors)
    sources = [_source(item, f"log_sources.{index}", errors) for index, item in enumerate(value)]
    if len(errors) > before:
        return None
    names = [source["name"] for source in sources]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        errors["log_sources"] = f"source names must be unique: {', '.join(duplicates)}"
        return None
    return sources


def clean_config(data) -> dict:
    """The config as it is stored: checked, defaults filled in for the keys it leaves out.

    Raises Invalid naming each problem by its path in the config (`log_sources.0.path`; "" for the
    config as a whole); unknown keys are reported alone, before anything else is looked at.
    """
    if not isinstance(data, dict):
        raise Invalid(details={"": NULL if data is None else _not_an_object(data)})
    unknown = _unknown(data, DEFAULTS, "")
    if unknown:
        raise Invalid(details=unknown)
    errors: dict[str, str] = {}
    clean = default_config()
    if "log_sources" in data:
        clean["log_sources"] = _log_sources(data["log_sources"], errors)
    for key, (low, high) in BOUNDS.items():
        if key in data:
            try:
                clean[key] = _integer(data[key], low, high)
            except _Refused as refused:
                errors[key] = refused.problem
    if errors:
        raise Invalid(details=errors)
    return clean
