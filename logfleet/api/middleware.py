import re

from django.conf import settings
from django.utils.deprecation import MiddlewareMixin

from logfleet.api.exceptions import error_response

# The edge pushes (metric samples and stream lines) may carry up to 5 MiB; everything else 1 MiB.
_EDGE_PUSH_PATH = re.compile(r"^/api/v1/edge/agents/[^/]+/(metrics|stream)$")


class BodySizeLimitMiddleware(MiddlewareMixin):
    """413 in the error envelope before anything reads or parses an oversized body."""

    def process_request(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, error="parse_error", message="Invalid Content-Length header")
        if length <= settings.MAX_BODY_BYTES:
            return None
        limit = settings.MAX_EDGE_PUSH_BODY_BYTES if _EDGE_PUSH_PATH.match(request.path) else settings.MAX_BODY_BYTES
        if length > limit:
            return error_response(413, details={"max_bytes": limit})
        return None
