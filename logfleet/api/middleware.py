from django.conf import settings
from django.http import HttpResponsePermanentRedirect
from django.utils.deprecation import MiddlewareMixin

from logfleet.api.exceptions import error_response


class QueryStringMiddleware(MiddlewareMixin):
    """A NUL character in the query string is refused before any view: PostgreSQL stores none, so
    a filter holding one would fail in the database (bodies: logfleet.api.parsers; sizes:
    logfleet.api.body_limit)."""

    def process_request(self, request):
        if "%00" in request.META.get("QUERY_STRING", ""):
            return error_response(400, details={"query": "must not contain NUL characters"})
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
