"""The one list envelope: {"items": [...], "total": N, "page": P, "page_size": S}."""

from rest_framework import serializers
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

ONCE_MESSAGE = "give this parameter at most once"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def _positive_int(request, name: str, default: int) -> int:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise serializers.ValidationError({name: ONCE_MESSAGE})
    raw = values[0] if values else None
    if raw is None or raw == "":
        return default
    # Digits only: int() would also take " 7", "\x1d7" and other scripts' digits.
    try:
        if not raw.isascii() or not raw.isdigit():
            raise ValueError(raw)
        value = int(raw)  # ValueError past 4300 digits too
    except ValueError:
        raise serializers.ValidationError({name: "must be an integer of at least 1"}) from None
    if value < 1:
        raise serializers.ValidationError({name: "must be an integer of at least 1"})
    return value


class EnvelopePagination(BasePagination):
    """Page numbers from 1; `page_size` defaults to 20 and is clamped to 100 (the clamped value is echoed).

    A page past the end is an empty `items` list with 200. The queryset must already be ordered
    (every list documents its order, ties broken by id).
    """

    def paginate_queryset(self, queryset, request, view=None):
        self.page = _positive_int(request, "page", 1)
        self.page_size = min(_positive_int(request, "page_size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        self.total = len(queryset) if isinstance(queryset, list) else queryset.count()
        offset = (self.page - 1) * self.page_size
        if offset >= self.total:
            return []
        return list(queryset[offset : offset + self.page_size])

    def get_paginated_response(self, data):
        return Response({"items": data, "total": self.total, "page": self.page, "page_size": self.page_size})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["items", "total", "page", "page_size"],
            "properties": {
                "items": schema,
                "total": {"type": "integer", "minimum": 0, "example": 100},
                "page": {"type": "integer", "minimum": 1, "example": 1},
                "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "example": 20},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "page",
                "in": "query",
                "required": False,
                "description": "Page number, from 1. A page past the end returns an empty `items` list.",
                "schema": {"type": "integer", "minimum": 1, "default": 1},
            },
            {
                "name": "page_size",
                "in": "query",
                "required": False,
                "description": f"Items per page (default {DEFAULT_PAGE_SIZE}); larger values are clamped to "
                f"{MAX_PAGE_SIZE} and the clamped value is echoed.",
                "schema": {"type": "integer", "minimum": 1, "default": DEFAULT_PAGE_SIZE},
            },
        ]
