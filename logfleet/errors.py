"""The domain errors services raise: plain Python, no DRF, no HTTP.

A service says *what* went wrong (not found, invalid with per-field details, conflict, version
conflict, gone, unavailable, ...); each caller maps that in one place:

- the REST API: `logfleet.api.exceptions.exception_handler` (status code and error envelope);
- the WebSocket consumers: `streaming.consumers` (a close code and reason, or an error frame);
- management commands: `logfleet.errors.as_command_error` (a `CommandError` with the message);
- the admin's forms: `logfleet.errors.add_to_form` (each problem beside its field).

`code` is the envelope's `error` field; `message` a sentence for a person; `details` a flat
{"field.path": "what is wrong with it"} dict.
"""

from django.core.management.base import CommandError


class DomainError(Exception):
    code = "invalid"
    default_message = "The request cannot be carried out"

    def __init__(self, message: str | None = None, details: dict | None = None):
        self.message = message or self.default_message
        self.details = dict(details or {})
        super().__init__(self.message)


class Invalid(DomainError):
    """Input that breaks a rule; `details` names each field and what is wrong with it."""

    code = "validation_error"
    default_message = "Invalid request parameters"

    def under(self, field: str) -> "Invalid":
        """The same error with each path put under `field` ("" is the value itself): a rule checks a
        value and names paths inside it; its caller knows where the value sits."""
        details = {f"{field}.{path}" if path else field: problem for path, problem in self.details.items()}
        return Invalid(self.message, details=details)


class Malformed(Invalid):
    """Input that is not even the format it should be (JSON that does not parse)."""

    code = "parse_error"
    default_message = "Malformed request"


class NotFound(DomainError):
    code = "not_found"
    default_message = "Not found"


class Unauthenticated(DomainError):
    """Credentials (a password, a token in a body) that do not prove who the caller is."""

    code = "not_authenticated"
    default_message = "Invalid or expired token"


class InvalidCredentials(Unauthenticated):
    code = "authentication_failed"
    default_message = "Invalid email or password"


class Forbidden(DomainError):
    code = "permission_denied"
    default_message = "You do not have permission to perform this action"


class Conflict(DomainError):
    code = "conflict"
    default_message = "Conflict with the current state of the resource"


class VersionConflict(Conflict):
    code = "version_conflict"
    default_message = "The resource was changed by someone else; reload it and retry with the current version"

    def __init__(self, current_version: int):
        super().__init__(details={"current_version": current_version})
        self.current_version = current_version


class Gone(DomainError):
    code = "gone"
    default_message = "The resource is gone"


class TooLarge(DomainError):
    """Input whose size or cost is over a limit (a body, a batch, a trial's lines)."""

    code = "payload_too_large"
    default_message = "Request body too large"


class RateLimited(DomainError):
    code = "rate_limited"
    default_message = "Rate limit exceeded; retry after the window resets"

    def __init__(self, retry_after: int, message: str | None = None):
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency (the database, Redis, the mail server) is not answering: retry shortly."""

    code = "service_unavailable"
    default_message = "Service temporarily unavailable"


# The largest version a PositiveIntegerField column holds on every database (PostgreSQL's integer).
MAX_VERSION = 2_147_483_647


def version_check_room(version: int) -> None:
    """Conflict when a change would take `version` past what its column holds (PostgreSQL refuses
    it, SQLite would store it): such an object cannot change any more, and says so."""
    if version >= MAX_VERSION:
        raise Conflict(
            "The version number has reached its maximum; this object cannot be changed again",
            details={"version": f"at its maximum ({MAX_VERSION})"},
        )


def as_command_error(exc: DomainError) -> CommandError:
    """A management command's one mapping: the message, then each field's problem."""
    parts = [exc.message] + [f"{field}: {problem}" for field, problem in exc.details.items()]
    return CommandError("; ".join(str(part) for part in parts))


def add_to_form(form, exc: DomainError) -> None:
    """An admin form's one mapping: each problem beside the form's field of that name; the message
    at the top when no detail names one of its fields (an organization's limit, a conflict)."""
    placed = False
    for field, problem in exc.details.items():
        if field in form.fields:
            form.add_error(field, str(problem))
            placed = True
    if not placed:
        form.add_error(None, exc.message)
