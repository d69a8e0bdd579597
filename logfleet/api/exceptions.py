"""One error shape for every status >= 400: {"error", "message", "details"}.

Code raises (a DRF exception, a Django exception or one of the domain errors below);
`exception_handler` renders. Plain Django views (404/500 handlers, middleware) use
`error_response` so that nothing ever answers with HTML or a traceback.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

logger = logging.getLogger("logfleet.api")

_JSON = JSONRenderer()

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


class APIError(exceptions.APIException):
    """A domain error: a status, an error code, a message and optional details."""

    status_code = status.HTTP_400_BAD_REQUEST
    error = "validation_error"
    default_detail = DEFAULT_MESSAGES[400]

    def __init__(self, message: str | None = None, details: dict | None = None):
        super().__init__(message or self.default_detail)
        self.details = details or {}


class InvalidCredentials(APIError):
    status_code = 401
    error = "authentication_failed"
    default_detail = "Invalid email or password"


class InvalidToken(APIError):
    """A token presented in a body (refresh) that is invalid, expired, used or of an ended session."""

    status_code = 401
    error = "not_authenticated"
    default_detail = "Invalid or expired token"


class Conflict(APIError):
    status_code = 409
    error = "conflict"
    default_detail = DEFAULT_MESSAGES[409]


class VersionConflict(APIError):
    status_code = 409
    error = "version_conflict"
    default_detail = "The resource was changed by someone else; reload it and retry with the current version"

    def __init__(self, current_version: int):
        super().__init__(details={"current_version": current_version})


# The largest version a PositiveIntegerField column holds on every database (PostgreSQL's integer).
MAX_VERSION = 2_147_483_647


def version_check_room(version: int) -> None:
    """409 when a change would take `version` past what its column holds (PostgreSQL refuses it,
    SQLite would store it): such an object cannot change any more, and says so."""
    if version >= MAX_VERSION:
        raise Conflict(
            "The version number has reached its maximum; this object cannot be changed again",
            details={"version": f"at its maximum ({MAX_VERSION})"},
        )


class Gone(APIError):
    status_code = 410
    error = "gone"
    default_detail = DEFAULT_MESSAGES[410]


class PayloadTooLarge(APIError):
    status_code = 413
    error = "payload_too_large"
    default_detail = DEFAULT_MESSAGES[413]


class ServiceUnavailable(APIError):
    status_code = 503
    error = "service_unavailable"
    default_detail = DEFAULT_MESSAGES[503]


class RateLimited(APIError):
    status_code = 429
    error = "rate_limited"
    default_detail = "Rate limit exceeded; retry after the window resets"

    def __init__(self, retry_after: int):
        super().__init__(details={"retry_after": retry_after})
        self.wait = retry_after


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


def _translate(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, exceptions.APIException):
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
        return ServiceUnavailable("The database is unavailable; retry shortly")
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

    status_code = api_exc.status_code
    headers = {}
    if getattr(api_exc, "auth_header", None):
        headers["WWW-Authenticate"] = api_exc.auth_header
    if getattr(api_exc, "wait", None):
        headers["Retry-After"] = str(max(1, int(api_exc.wait)))

    if isinstance(api_exc, APIError):
        body = error_body(status_code, error=api_exc.error, message=str(api_exc.detail), details=api_exc.details)
    elif isinstance(api_exc, exceptions.ParseError):
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
