"""What every dashboard page shares (UI.md): rendering, forms, the Content-Security-Policy and
the HTML error pages. Who is signed in, and the role gate of each page, is the accounts app's
(`accounts.browser`); each app's pages live in its own `pages.py` and call the same services and
selectors as its API views.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from rest_framework import serializers

from logfleet import errors
from logfleet.api.exceptions import domain_status, flatten_errors

# Scripts and styles come from this origin only (the vendored assets); no inline script, no eval.
# The live tail's WebSocket is same-origin ('self' covers ws: and wss: of this origin).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# The pages whose HTML is not ours (Django's admin, the API's Swagger UI) keep their own rules.
_FOREIGN_HTML = ("/admin/", "/api/v1/docs")


class ContentSecurityPolicyMiddleware:
    """Every HTML page of the dashboard says what it may load: see CONTENT_SECURITY_POLICY."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html") and not request.path.startswith(_FOREIGN_HTML):
            response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            response.setdefault("Referrer-Policy", "same-origin")
        return response


def wants_html(request: HttpRequest) -> bool:
    """A browser: its Accept asks for text/html (the API's clients ask for JSON, or for nothing)."""
    return "text/html" in request.headers.get("Accept", "")


def is_htmx(request: HttpRequest) -> bool:
    """A request htmx sent to refresh or submit part of a page (it wants a fragment back)."""
    return request.headers.get("HX-Request") == "true"


def error_page(request: HttpRequest, status: int, message: str = "") -> HttpResponse:
    titles = {403: "Not allowed", 404: "Page not found", 429: "Too many requests", 500: "Something went wrong"}
    return render(
        request,
        "logfleet/error.html",
        {"status": status, "title": titles.get(status, "Error"), "message": message},
        status=status,
    )


@dataclass
class Form:
    """A submitted form: what was typed (to show it again) and what is wrong with it, by field.

    `errors["__all__"]` is a problem of the form as a whole."""

    data: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    status: int = 200

    @property
    def valid(self) -> bool:
        return not self.errors

    def error(self, name: str) -> str:
        return self.errors.get(name, "")

    @property
    def general(self) -> str:
        """The problem of the form as a whole (templates cannot read `__all__`)."""
        return self.errors.get("__all__", "")


def form_data(post: QueryDict, *, lists: tuple[str, ...] = ()) -> dict:
    """A form's fields as one value each (the names in `lists` as lists, for multi-selects)."""
    return {key: post.getlist(key) if key in lists else post.get(key) for key in post}


def submit(
    data: dict,
    action: Callable[[dict], object],
    *,
    serializer_class: type[serializers.Serializer] | None = None,
    serializer_kwargs: dict | None = None,
) -> tuple[object, Form]:
    """Validate `data` with the API's own serializer (validate and shape only), then run `action`
    (a service call) on the validated data. Returns (its result, the form): a serializer's or a
    service's refusal comes back as the form's errors, with nothing changed, for the page to show
    beside the fields. Services write in one transaction, so nothing is ever half-saved."""
    form = Form(data=data)
    validated = data
    if serializer_class is not None:
        serializer = serializer_class(data=data, **(serializer_kwargs or {}))
        if not serializer.is_valid():
            form.errors = flatten_errors(serializer.errors)
            form.errors = {("__all__" if k == "non_field_errors" else k): v for k, v in form.errors.items()}
            form.status = 400
            return None, form
        validated = serializer.validated_data
    try:
        return action(validated), form
    except errors.DomainError as exc:
        form.errors = {str(k): str(v) for k, v in exc.details.items() if not isinstance(v, (int, float))}
        if isinstance(exc, errors.RateLimited):
            form.errors = {"__all__": f"Too many attempts; try again in {max(1, int(exc.retry_after))} seconds."}
        elif not form.errors or exc.message != errors.Invalid.default_message:
            form.errors.setdefault("__all__", exc.message)
        form.status = domain_status(exc)
        return None, form


# Every table of the dashboard shows this many rows a page (UI.md: paginated on the server).
PAGE_SIZE = 50


@dataclass
class Paged:
    """One page of an ordered list, as the API pages its lists: from 1, a page past the end empty."""

    items: list
    total: int
    number: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.size + 1 if self.items else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * self.size + len(self.items)

    @property
    def previous(self) -> int | None:
        return min(self.number - 1, self.pages) if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None


def page_number(raw: str | None) -> int:
    """A `page` query parameter: 1 when absent; Invalid (naming `page`) unless a whole number ≥ 1."""
    if raw in (None, ""):
        return 1
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if number < 1:
        raise errors.Invalid(details={"page": "must be an integer of at least 1"})
    return number


def paginate(queryset, number: int, size: int = PAGE_SIZE) -> Paged:
    """Page `number` of an ordered queryset: one COUNT and one LIMIT/OFFSET query."""
    total = queryset.count()
    offset = (number - 1) * size
    items = list(queryset[offset : offset + size]) if offset < total else []
    return Paged(items=items, total=total, number=number, size=size)
