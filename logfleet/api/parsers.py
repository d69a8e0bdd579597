"""The JSON parser of every API view: DRF's, plus what the databases refuse.

PostgreSQL stores no NUL character in text or jsonb (SQLite does), so a NUL anywhere in a body
would pass validation and fail the write (or a later batch): it is refused here, for every
write path at once, naming the field. A body nested deeper than Python can decode is a 400,
not a RecursionError.
"""

import json

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings

NUL_MESSAGE = "must not contain NUL characters"


def _strict_constant(name):
    raise ValueError(f"{name} is not valid JSON")


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            data = json.loads(text, parse_constant=_strict_constant if api_settings.STRICT_JSON else None)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if "\\u0000" in text:
            path = nul_path(data)
            if path is not None:
                raise ValidationError({path or "non_field_errors": NUL_MESSAGE})
        return data


def nul_path(value) -> str | None:
    """The dotted path of the first string (or object key) that holds a NUL; None when none does."""
    stack = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    return path or "non_field_errors"
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}.{index}" if path else str(index), child) for index, child in enumerate(item))
    return None
