"""The JSON parser and renderer of every API view (orjson), plus what the databases refuse.

Bodies are decoded by orjson, about four times faster than the standard library on a metric
batch. Where orjson refuses what the standard library decodes (a number beyond a double's range,
an escaped lone surrogate), the standard library decides, so that those stay the errors they were:
a per-sample error for `1e400`, and a 400 that names the field for a surrogate.

PostgreSQL stores no NUL character in text or jsonb (SQLite does), and no unpaired UTF-16
surrogate (`"\\ud800"` decodes to a string that has no UTF-8 encoding; SQLite refuses it too, but
only when the row is written). A DRF CharField refuses surrogates itself, but JSON fields (labels,
selectors, heartbeat metrics, configs) do not, so either would pass validation and fail the write
(or a later batch): both are refused here, for every write path at once, naming the field. A body
nested deeper than Python can decode is a 400, not a RecursionError.
"""

import json
import re

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

NUL_MESSAGE = "must not contain NUL characters"
SURROGATE_MESSAGE = "must not contain unpaired UTF-16 surrogates (\\ud800 to \\udfff)"

_SURROGATE = re.compile("[\ud800-\udfff]")
# How a surrogate can appear in JSON text at all: as an escape (raw ones are not valid UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


class NestedTooDeeply(ValueError):
    pass


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def strict_loads(text: str | bytes):
    """JSON text (str, or UTF-8 bytes) decoded as the API accepts it (the request bodies here, the
    WebSocket frames in streaming.consumers): no NaN or Infinity, and nesting deeper than 1 024 is
    NestedTooDeeply, a ValueError like every other refusal."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise NestedTooDeeply("nested too deeply") from None
    # What orjson refused, the standard library judges: it decodes huge numbers and lone surrogates
    # (refused later, with their field's name) and says what is wrong with the rest.
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise NestedTooDeeply("nested too deeply") from None


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            # UTF-8 bytes go to orjson as they are (it checks the encoding); another declared
            # charset is decoded first.
            text = raw if encoding.lower().replace("-", "") == "utf8" else raw.decode(encoding)
            data = strict_loads(text)
        except NestedTooDeeply:
            raise ParseError("JSON parse error - the body is nested too deeply") from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from None
        if may_hold_unstorable_text(text):
            refuse_unstorable_text(data)
        return data


class OrjsonRenderer(JSONRenderer):
    """DRF's JSON renderer through orjson, with the same output (UTF-8, compact, dates as DRF writes
    them, U+2028 and U+2029 escaped); `indent` in the Accept header gives two-space indentation.
    NaN and infinity are null (DRF's strict mode would fail the response with a 500). What orjson
    cannot encode (integers beyond 64 bits, keys that are not strings) DRF's renderer does."""

    _default = JSONEncoder().default  # datetimes, decimals, lazy strings, querysets: as DRF encodes them

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        option = orjson.OPT_PASSTHROUGH_DATETIME
        if self.get_indent(accepted_media_type, renderer_context or {}):
            option |= orjson.OPT_INDENT_2
        try:
            body = orjson.dumps(data, default=self._default, option=option)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        if b"\xe2\x80\xa8" in body or b"\xe2\x80\xa9" in body:  # keep JSON a strict subset of JavaScript
            body = body.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")
        return body


def may_hold_unstorable_text(json_text: str | bytes) -> bool:
    """Whether decoded JSON text can hold a NUL or a surrogate (a cheap test of the raw text)."""
    if isinstance(json_text, bytes):
        return b"\\u0000" in json_text or _SURROGATE_ESCAPE_BYTES.search(json_text) is not None
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
