"""The API keys page (UI.md `/keys`, admins only): the organization's keys; create one, rotate one
with a grace period, revoke one.

It validates with the API's serializers and calls the same selector and services as
apikeys.views. A raw key is in exactly one answer, the one that made it: it is never stored (not in
the session, not in a message), never in the list, and that answer is not cached. htmx submits
create and rotate in place, so reloading the page afterwards is a plain GET of the list.
"""

import uuid

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache

from accounts.browser import page
from accounts.models import Role
from apikeys import keys, selectors, services
from apikeys.serializers import APIKeyCreateSerializer, APIKeyRotateSerializer
from logfleet import errors
from logfleet.api.client import client_ip
from logfleet.pages import Form, error_page, form_data, is_htmx, page_number, paginate, submit

# What each permission lets a key do, beside its checkbox.
_WHAT = {
    "edge:register": "register agents",
    "edge:heartbeat": "heartbeats and configs",
    "edge:metrics": "push metric samples",
    "edge:stream": "push live log lines",
    "metrics:read": "Prometheus export",
}
PERMISSION_CHOICES = [(permission, _WHAT.get(permission, "")) for permission in keys.PERMISSIONS]
EDGE_PERMISSIONS = [permission for permission in keys.PERMISSIONS if permission.startswith("edge:")]  # an agent's

# How long a rotated key keeps working (the API takes 0 to 604800 seconds; a day by default).
GRACE_CHOICES = ((0, "no time: it stops at once"), (3600, "1 hour"), (86400, "1 day"), (604800, "7 days"))


@never_cache
@page(Role.ADMIN, methods=("GET", "HEAD", "POST"))
def key_list(request):
    if request.method != "POST":
        return _render(request)
    action = request.POST.get("action")
    if action == "create":
        return _create(request)
    if action in ("rotate", "revoke"):
        key = _key(request)
        if key is None:
            return error_page(request, 404, "There is no such API key in your organization.")
        return _rotate(request, key) if action == "rotate" else _revoke(request, key)
    return error_page(request, 400, "The form did not say what to do.")


def _actor(request) -> services.Actor:
    return services.Actor(user=request.user, ip_address=client_ip(request))


def _key(request):
    try:
        key_id = uuid.UUID(request.POST.get("key", ""))
    except ValueError:
        return None
    return selectors.api_key_list(organization_id=request.user.organization_id).filter(pk=key_id).first()


def _as_utc(value: str) -> str:
    """A datetime-local input sends a wall-clock time without an offset; the form says it is UTC."""
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    return f"{value}Z" if parsed is not None and parsed.tzinfo is None else value


def _create(request):
    typed = form_data(request.POST, lists=("permissions",))
    body = {key: typed[key] for key in ("name", "permissions") if key in typed}
    if typed.get("expires_at"):
        body["expires_at"] = _as_utc(typed["expires_at"])

    def create(data):
        return services.api_key_create(organization=request.user.organization, actor=_actor(request), **data)

    result, form = submit(body, create, serializer_class=APIKeyCreateSerializer)
    form.data = typed
    if result is None:
        # One message beside the checkboxes, whichever of them was wrong.
        for name in [name for name in form.errors if name.startswith("permissions.")]:
            form.errors.setdefault("permissions", form.errors.pop(name))
        return _render(request, create=form, status=form.status)
    key, raw = result
    return _render(request, created={"key": key, "raw": raw}, status=201)


def _rotate(request, key):
    def rotate(data):
        return services.api_key_rotate(key=key, grace_seconds=data["grace_seconds"], actor=_actor(request))

    result, form = submit(form_data(request.POST), rotate, serializer_class=APIKeyRotateSerializer)
    if result is None:
        problem = form.general or "; ".join(form.errors.values())
        return _render(request, refused=f"“{key.name}” was not rotated: {problem}", status=form.status)
    new_key, raw = result
    key.refresh_from_db()
    return _render(request, created={"key": new_key, "raw": raw, "previous": key}, status=201)


def _revoke(request, key):
    services.api_key_revoke(key=key, actor=_actor(request))
    messages.success(request, f"“{key.name}” ({key.key_prefix}…) is revoked: it no longer works anywhere.")
    return redirect(request.get_full_path())


def _render(request, *, create: Form | None = None, created: dict | None = None, refused: str = "", status=200):
    try:
        number = page_number(request.GET.get("page"))
    except errors.Invalid:
        return error_page(request, 400, "A page number is a whole number from 1.")
    context = {
        "keys": paginate(selectors.api_key_list(organization_id=request.user.organization_id), number),
        "create": create or Form(data={"permissions": EDGE_PERMISSIONS}),
        "created": created,
        "refused": refused,
        "permissions": PERMISSION_CHOICES,
        "grace_choices": GRACE_CHOICES,
        "default_grace": services.DEFAULT_GRACE_SECONDS,
    }
    template = "apikeys/_keys.html" if is_htmx(request) else "apikeys/keys.html"
    return render(request, template, context, status=status)
