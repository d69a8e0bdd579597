"""Operations endpoints and the JSON answers for paths and errors outside the API views."""

import logging

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpResponse
from django.http.request import split_domain_port
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from logfleet.api.exceptions import error_response
from logfleet.pages import error_page, wants_html

logger = logging.getLogger("logfleet.ops")


class HealthView(APIView):
    """Liveness: the process answers. No dependencies checked."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(tags=["operations"], responses=inline_serializer("Health", {"status": serializers.CharField()}))
    def get(self, request):
        return Response({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_redis() -> str:
    if not settings.REDIS_URL:
        return "not configured"
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


class ReadyView(APIView):
    """Readiness: the database answers, and Redis when REDIS_URL is set."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["operations"],
        responses={
            200: inline_serializer("Ready", {"status": serializers.CharField(), "checks": serializers.DictField()}),
            503: inline_serializer("NotReady", {"status": serializers.CharField(), "checks": serializers.DictField()}),
        },
    )
    def get(self, request):
        checks, healthy = {}, True
        for name, check in (("database", _check_database), ("redis", _check_redis)):
            try:
                checks[name] = check()
            except Exception as exc:  # any failure of a dependency makes us not ready
                logger.warning("readiness check %s failed: %s", name, exc)
                # The kind of error only: its text may name hosts and users, and anyone may ask.
                checks[name] = f"error: {exc.__class__.__name__}"
                healthy = False
        return Response(
            {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
        )


@csrf_exempt  # an unknown URL is a 404 for every method (not a CSRF refusal)
def not_found(request, exception=None, **kwargs):
    """The JSON envelope, or for a browser (Accept: text/html) a plain page with a link home."""
    if wants_html(request):
        return error_page(request, 404)
    return error_response(404, message=f"No such endpoint: {request.path}" if exception is None else None)


def csrf_failure(request, reason=""):
    """The API authenticates with tokens and keys, not cookies; the admin's and the dashboard's
    forms carry Django's CSRF token."""
    if request.path.startswith("/admin/"):
        return django_csrf_failure(request, reason)
    if wants_html(request) or not request.path.startswith("/api/"):  # a dashboard form
        return error_page(request, 403, "The form had expired. Go back, reload the page and try again.")
    return error_response(403, message="CSRF verification failed")


def bad_request(request, exception=None):
    if isinstance(exception, DisallowedHost):
        # ALLOWED_HOSTS holds names without their port: say the name as it must be added.
        host, _port = split_domain_port(request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", ""))
        return error_response(
            400,
            message=f"This server does not serve the host {host!r}; add it to ALLOWED_HOSTS on the server",
            details={"host": host, "setting": "ALLOWED_HOSTS"},
        )
    return error_response(400, message="Bad request")


class ProbesMiddleware:
    """/healthz and /readyz answer whatever the Host header says: load balancers and orchestrators
    probe a process by its address, which is not in ALLOWED_HOSTS. First in the chain."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.probes = {"/healthz": HealthView.as_view(), "/readyz": ReadyView.as_view()}

    def __call__(self, request):
        probe = self.probes.get(request.path)
        if probe is None:
            return self.get_response(request)
        response = probe(request)
        response.render()
        return response


def permission_denied(request, exception=None):
    if wants_html(request):
        return error_page(request, 403)
    return error_response(403)


def server_error(request):
    if wants_html(request):
        # A bare page: the error may have come from the templates themselves.
        return HttpResponse(
            "<!doctype html><title>Server error</title><h1>Something went wrong</h1><p><a href='/'>Overview</a></p>",
            status=500,
        )
    return error_response(500)
