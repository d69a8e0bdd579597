"""The JSON parser of every API view: DRF's, plus what the databases refuse.

PostgreSQL stores no NUL character in text or jsonb (SQLite does), and no unpaired UTF-16
surrogate (`"\\ud800"` decodes to a string that has no UTF-8 encoding; SQLite refuses it too, but
only when the row is written). A DRF CharField refuses surrogates itself, but JSON fields (labels,
selectors, heartbeat metrics, configs) do not, so either would pass validation and fail the write
(or a later batch): both are refused here, for every write path at once, naming the field. A body
nested deeper than Python can decode is a 400, not a RecursionError.
"""

import json
import re

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

NUL_MESSAGE = "must not contain NUL characters"
SURROGATE_MESSAGE = "must not contain unpaired UTF-16 surrogates (\\ud800 to \\udfff)"

_SURROGATE = re.compile("[\ud800-\udfff]")
# How a surrogate can appear in JSON text at all: as an escape (raw ones are not valid UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class NestedTooDeeply(ValueError):
    pass


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def strict_loads(text: str):
    """JSON text decoded as the API accepts it (the request bodies here, the WebSocket frames in
    streaming.consumers): no NaN or Infinity, and nesting Python cannot decode is NestedTooDeeply,
    a ValueError like every other refusal."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise NestedTooDeeply("nested too deeply") from None


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            data = strict_loads(text)
        except NestedTooDeeply:
            raise ParseError("JSON parse error - the body is nested too deeply") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if may_hold_unstorable_text(text):
            refuse_unstorable_text(data)
        return data


def may_hold_unstorable_text(json_text: str) -> bool:
    """Whether decoded JSON text can hold a NUL or a surrogate (a cheap test of the raw text)."""
    return "\\u0000" in json_text or _SURROGATE_ESCAPE.search(json_text) is not None


def refuse_unstorable_text(data) -> None:
    """A 400 naming the first string (or object key) the databases cannot store; nothing otherwise."""
    found = unstorable_text(data)
    if found is not None:
        path, message = found
        raise ValidationError({path or "non_field_errors": message})


def _problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL_MESSAGE
    if _SURROGATE.search(text):
        return SURROGATE_MESSAGE
    return None


def unstorable_text(value) -> tuple[str, str] | None:
    """(dotted path, message) of the first string or object key that holds a NUL or an unpaired
    surrogate; None when none does. A bad key is reported at its object's path."""
    stack = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = _problem(item)
            if problem is not None:
                return path, problem
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = _problem(key)
                if problem is not None:
                    return path or "non_field_errors", problem
                stack.append((f"{path}.{key}" if path else str(key), child))
        elif isinstance(item, list):
            stack.extend((f"{path}.{index}" if path else str(index), child) for index, child in enumerate(item))
    return None
