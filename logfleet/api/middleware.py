import re

from django.conf import settings
from django.http import HttpResponsePermanentRedirect
from django.utils.deprecation import MiddlewareMixin

from logfleet.api.exceptions import error_response

# The edge pushes (metric samples and stream lines) may carry up to 5 MiB; everything else 1 MiB.
_EDGE_PUSH_PATH = re.compile(r"^/api/v1/edge/agents/[^/]+/(metrics|stream)$")


class RequestBoundsMiddleware(MiddlewareMixin):
    """Refuses, in the error envelope and before any view: an oversized body (413, before anything
    reads or parses it) and a NUL character in the query string (PostgreSQL stores none, so a
    filter holding one would fail in the database; see also logfleet.api.parsers)."""

    def process_request(self, request):
        if "%00" in request.META.get("QUERY_STRING", ""):
            return error_response(400, details={"query": "must not contain NUL characters"})
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


class HTTPSOnlyMiddleware:
    """With HTTPS_ONLY=true, a plain-HTTP request is refused (the API, in the error envelope: an
    agent's POST cannot follow a redirect) or redirected to HTTPS (the admin and other pages, GET
    and HEAD). /healthz and /readyz are answered before it (logfleet.views.ProbesMiddleware). Off by
    default; whether a request is secure is request.is_secure() (see
    TRUSTED_PROXY_COUNT)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.HTTPS_ONLY or request.is_secure():
            return self.get_response(request)
        if request.path.startswith("/api/") or request.method not in ("GET", "HEAD"):
            return error_response(
                403,
                message="This server accepts HTTPS only; send the request to its https:// URL",
                details={"scheme": "https is required (HTTPS_ONLY)"},
            )
        return HttpResponsePermanentRedirect(f"https://{request.get_host()}{request.get_full_path()}")
