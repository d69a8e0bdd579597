"""One error shape for every status >= 400: {"error", "message", "details"}.

Code raises a domain error (`logfleet.errors`), a DRF exception (serializer validation,
authentication) or a Django exception; `exception_handler` renders each in one place. Plain
Django views (404/500 handlers, middleware) use `error_response` so that nothing ever answers
with HTML or a traceback.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

from logfleet import errors
from logfleet.api.parsers import OrjsonRenderer

logger = logging.getLogger("logfleet.api")

_JSON = OrjsonRenderer()

ERROR_CODES = {
    400: "validation_error",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}

DEFAULT_MESSAGES = {
    400: "Invalid request parameters",
    401: "Authentication credentials were not provided or are invalid",
    403: "You do not have permission to perform this action",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the current state of the resource",
    410: "The resource is gone",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service temporarily unavailable",
}


# Each domain error's HTTP status; a subclass takes its nearest listed ancestor's.
DOMAIN_STATUS: dict[type[errors.DomainError], int] = {
    errors.Invalid: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.TooLarge: 413,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
    errors.DomainError: 400,
}


def domain_status(exc: errors.DomainError) -> int:
    return next(DOMAIN_STATUS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_STATUS)


def domain_response(exc: errors.DomainError) -> Response:
    """The envelope of a domain error, for views that answer without DRF's handler."""
    status_code = domain_status(exc)
    headers = {}
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(max(1, int(exc.retry_after)))
    return Response(
        error_body(status_code, error=exc.code, message=exc.message, details=exc.details),
        status=status_code,
        headers=headers,
    )


def flatten_errors(detail, prefix: str = "") -> dict[str, str]:
    """DRF's nested error structure as {"dotted.path": "one readable string"}."""
    out: dict[str, str] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                # An error of the object as a whole belongs to the object's own path.
                out.update(flatten_errors(value, prefix or "non_field_errors"))
            else:
                out.update(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            if detail:
                out[prefix or "non_field_errors"] = " ".join(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    out.update(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "non_field_errors"] = str(detail)
    return out


def error_body(status_code: int, *, error: str | None = None, message: str | None = None, details=None) -> dict:
    return {
        "error": error or ERROR_CODES.get(status_code, "validation_error" if status_code < 500 else "internal_error"),
        "message": message or DEFAULT_MESSAGES.get(status_code, "Error"),
        "details": details or {},
    }


def error_response(status_code: int, **kwargs) -> JsonResponse:
    return JsonResponse(error_body(status_code, **kwargs), status=status_code)


def _database_unavailable(exc: Exception) -> bool:
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.startswith("sqlite3"):
        # SQLite reports SQL mistakes as OperationalError too; only contention is "unavailable".
        return any(word in str(cause) for word in ("locked", "busy", "unable to open"))
    return True


def _translate(exc: Exception) -> exceptions.APIException | errors.DomainError | None:
    if isinstance(exc, (exceptions.APIException, errors.DomainError)):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(as_serializer_error(exc))
    if _database_unavailable(exc):
        # The database went away (restart, failover) or is busy: a retryable 503, not a bug.
        logger.warning("database unavailable: %s", exc)
        return errors.Unavailable("The database is unavailable; retry shortly")
    return None


def exception_handler(exc: Exception, context: dict):
    request = context.get("request")
    if request is not None:
        # Errors are JSON on every route, also where the view renders something else (the OpenAPI
        # schema's YAML, Swagger's HTML, the Prometheus text export) or negotiation failed.
        request.accepted_renderer, request.accepted_media_type = _JSON, _JSON.media_type
    api_exc = _translate(exc)
    if api_exc is None:
        if isinstance(exc, DatabaseError):
            logger.exception("database error")
        else:
            logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        return Response(error_body(500), status=500)
    if isinstance(api_exc, errors.DomainError):
        return domain_response(api_exc)

    status_code = api_exc.status_code
    headers = {}
    if getattr(api_exc, "auth_header", None):
        headers["WWW-Authenticate"] = api_exc.auth_header
    if getattr(api_exc, "wait", None):
        headers["Retry-After"] = str(max(1, int(api_exc.wait)))

    if isinstance(api_exc, exceptions.ParseError):
        body = error_body(400, error="parse_error", message=str(api_exc.detail))
    elif isinstance(api_exc, exceptions.ValidationError):
        body = error_body(400, details=flatten_errors(api_exc.detail))
    elif isinstance(api_exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        message = api_exc.detail if isinstance(api_exc.detail, str) else None
        body = error_body(401, error="not_authenticated", message=message)
    else:
        detail = api_exc.detail
        message = str(detail) if isinstance(detail, str) else None
        body = error_body(status_code, message=message)
    return Response(body, status=status_code, headers=headers)
