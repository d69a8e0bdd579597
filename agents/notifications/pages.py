"""The notifications page (UI.md `/notifications`, admins only): the organization's channels (add a
webhook or an email channel, edit, enable or disable, delete, send a test) and their recent
deliveries.

It validates with the API's serializer and calls the same selectors and services as
agents.notifications.views. A webhook's signing secret is in exactly one answer, the one that made
the channel: it is never put in the session or a message, and that answer is not cached. htmx
submits the new channel's form in place, so reloading the page afterwards is a plain GET of the
list. The Deliveries table refreshes itself while one of its rows is pending.
"""

import uuid

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache

from accounts.browser import page
from accounts.models import Role
from agents.labels import labels_as_text, labels_from_text
from agents.models import SUBSCRIBABLE_EVENTS, ChannelKind, DeliveryStatus, NotificationChannel
from agents.notifications import selectors, services
from agents.notifications.serializers import NotificationChannelUpdateSerializer, create_serializer_for
from logfleet import errors
from logfleet.api.client import client_ip
from logfleet.pages import Form, error_page, form_data, is_htmx, page_number, paginate, submit

# When each event happens (API.md section 11), beside its checkbox.
_WHEN = {
    "agent.offline": "an agent goes silent",
    "agent.online": "it heartbeats again",
    "agent.error": "it reports an error",
    "agent.config_failed": "it fails to apply a config",
    "api_key.expiring": "an API key expires in 7 days",
}
EVENT_CHOICES = [(event, _WHEN.get(event, "")) for event in SUBSCRIBABLE_EVENTS]
DEFAULT_EVENTS = ["agent.offline", "agent.online", "agent.error", "agent.config_failed"]
NO_SUCH_CHANNEL = "There is no such notification channel in your organization."
PAGE_NUMBER = "A page number is a whole number from 1."


def _channel(request: HttpRequest, channel_id) -> NotificationChannel | None:
    try:
        return selectors.notification_channel_get(organization_id=request.user.organization_id, channel_id=channel_id)
    except errors.NotFound:
        return None


def _typed(request: HttpRequest) -> dict:
    """What the channel form holds, to show again: text as typed, events as a list, enabled as a bool."""
    typed = form_data(request.POST, lists=("events",))
    typed.setdefault("events", [])
    typed["enabled"] = "enabled" in request.POST
    return {key: value for key, value in typed.items() if key not in ("csrfmiddlewaretoken", "action")}


def _body(typed: dict, kind: str, *, channel: NotificationChannel | None = None) -> dict:
    """The API's body for what was typed: the address of the channel's kind only (the other field
    is for the other kind), and the selector's `k:v` lines as labels (Invalid naming it)."""
    body = {
        "name": typed.get("name", ""),
        "events": typed["events"],
        "agent_selector": labels_from_text(typed.get("agent_selector") or "", field="agent_selector"),
        "enabled": typed["enabled"],
    }
    address = "url" if kind == ChannelKind.WEBHOOK else "email" if kind == ChannelKind.EMAIL else None
    if address is not None:
        value = (typed.get(address) or "").strip()  # a pasted address may carry spaces around it
        # An unchanged URL is not resolved again to change another field of a channel.
        if channel is None or value != getattr(channel, address):
            body[address] = value
    if channel is None:
        body["kind"] = kind
    return body


def _submit(typed: dict, kind: str, action, *, channel: NotificationChannel | None = None) -> tuple[object, Form]:
    try:
        body = _body(typed, kind, channel=channel)
    except errors.Invalid as exc:
        result, form = None, Form(errors=dict(exc.details), status=400)
    else:
        shape = create_serializer_for(body) if channel is None else NotificationChannelUpdateSerializer
        result, form = submit(body, action, serializer_class=shape)
    # One message beside each field, whichever of its items was wrong ("events.0", "agent_selector.").
    for name in [name for name in form.errors if "." in name]:
        message = form.errors.pop(name)
        form.errors.setdefault(name.split(".")[0], message)
    form.data = {**typed, "kind": kind}
    return result, form


# --- the page --------------------------------------------------------------------------------


@never_cache
@page(Role.ADMIN, methods=("GET", "HEAD", "POST"))
def notification_list(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render(request)
    action = request.POST.get("action")
    if action == "create":
        return _create(request)
    if action in ("enable", "disable", "test", "delete"):
        channel = _channel(request, request.POST.get("channel", ""))
        if channel is None:
            return error_page(request, 404, NO_SUCH_CHANNEL)
        if action == "test":
            return _test(request, channel)
        if action == "delete":
            return _delete(request, channel)
        return _enable(request, channel, enabled=action == "enable")
    return error_page(request, 400, "The form did not say what to do.")


def _create(request: HttpRequest) -> HttpResponse:
    typed = _typed(request)
    kind = typed.get("kind") or ""

    def create(data):
        return services.notification_channel_create(
            organization=request.user.organization, actor=request.user, ip_address=client_ip(request), **data
        )

    result, form = _submit(typed, kind, create)
    if result is None:
        return _render(request, create=form, status=form.status)
    channel, secret = result
    return _render(request, created={"channel": channel, "secret": secret}, status=201)


def _enable(request: HttpRequest, channel: NotificationChannel, *, enabled: bool) -> HttpResponse:
    services.notification_channel_update(
        channel=channel, actor=request.user, ip_address=client_ip(request), enabled=enabled
    )
    if enabled:
        messages.success(request, f"“{channel.name}” is enabled: it gets the events it subscribed to.")
    else:
        messages.success(request, f"“{channel.name}” is disabled: it gets no events until it is enabled again.")
    return redirect(request.get_full_path())


def _test(request: HttpRequest, channel: NotificationChannel) -> HttpResponse:
    try:
        services.notification_channel_test(channel=channel)
    except errors.Conflict as exc:
        return _render(request, refused=f"No test sent to “{channel.name}”: {exc.message}.", status=409)
    messages.success(
        request,
        f"A test notification to “{channel.name}” is on its way: it is listed under Deliveries, "
        f"pending until the sender sends it (within {settings.ALERT_SWEEP_SECONDS:g} s while it runs).",
    )
    return redirect(request.get_full_path())


def _delete(request: HttpRequest, channel: NotificationChannel) -> HttpResponse:
    services.notification_channel_delete(channel=channel, actor=request.user, ip_address=client_ip(request))
    messages.success(request, f"“{channel.name}” is deleted, with its deliveries.")
    return redirect(request.get_full_path())


def _deliveries(request: HttpRequest, channels: list[NotificationChannel]) -> dict:
    """The Deliveries table's context: one page of deliveries, of one channel when `channel` says
    so; Invalid naming `page` or `channel`."""
    number = page_number(request.GET.get("page"))
    raw = request.GET.get("channel") or ""
    channel_id = None
    if raw:
        try:
            channel_id = uuid.UUID(raw)
        except ValueError:
            raise errors.Invalid(details={"channel": "is not a channel of this organization"}) from None
        if channel_id not in {channel.pk for channel in channels}:
            raise errors.Invalid(details={"channel": "is not a channel of this organization"})
    recent = selectors.notification_delivery_recent(organization_id=request.user.organization_id, channel_id=channel_id)
    # The page's ids first (a sort of narrow rows), then those rows with their events and channels:
    # sorting a week of whole rows, event bodies included, is what made the page slow on a busy fleet.
    deliveries = paginate(recent.values_list("pk", flat=True), number)
    rows = selectors.notification_delivery_rows(ids=deliveries.items)
    deliveries.items = [rows[pk] for pk in deliveries.items if pk in rows]
    return {
        "channels": channels,
        "deliveries": deliveries,
        "delivery_channel": str(channel_id) if channel_id else "",
        "waiting": any(delivery.status == DeliveryStatus.PENDING for delivery in deliveries.items),
    }


def _channels(request: HttpRequest) -> list[NotificationChannel]:
    """Every channel of the organization (at most MAX_NOTIFICATION_CHANNELS_PER_ORG: not paginated)."""
    channels = list(selectors.notification_channel_list(organization_id=request.user.organization_id))
    for channel in channels:
        channel.selector_items = sorted(channel.agent_selector.items())
    return channels


def _render(
    request: HttpRequest,
    *,
    create: Form | None = None,
    created: dict | None = None,
    refused: str = "",
    status: int = 200,
) -> HttpResponse:
    channels = _channels(request)
    try:
        deliveries = _deliveries(request, channels)
    except errors.Invalid as exc:
        return error_page(request, 400, PAGE_NUMBER if "page" in exc.details else "There is no such channel here.")
    context = {
        **deliveries,
        "create": create or Form(data={"kind": ChannelKind.WEBHOOK, "events": DEFAULT_EVENTS, "enabled": True}),
        "created": created,
        "refused": refused,
        "event_choices": EVENT_CHOICES,
        "kinds": ChannelKind.choices,
        "limit": settings.MAX_NOTIFICATION_CHANNELS_PER_ORG,
    }
    template = "agents/_notifications.html" if is_htmx(request) else "agents/notifications.html"
    return render(request, template, context, status=status)


@page(Role.ADMIN)
def notification_deliveries(request: HttpRequest) -> HttpResponse:
    """The Deliveries table alone (what it swaps in when it refreshes itself), same query as the page."""
    try:
        context = _deliveries(request, _channels(request))
    except errors.Invalid as exc:
        return error_page(request, 400, PAGE_NUMBER if "page" in exc.details else "There is no such channel here.")
    response = render(request, "agents/_deliveries.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- one channel -----------------------------------------------------------------------------


@page(Role.ADMIN, methods=("GET", "HEAD", "POST"))
def notification_edit(request: HttpRequest, channel_id) -> HttpResponse:
    """Change a channel (PATCH /notification-channels/{id}): its kind stays."""
    channel = _channel(request, channel_id)
    if channel is None:
        return error_page(request, 404, NO_SUCH_CHANNEL)
    if request.method != "POST":
        form = Form(
            data={
                "name": channel.name,
                "url": channel.url,
                "email": channel.email,
                "events": channel.events,
                "agent_selector": labels_as_text(channel.agent_selector),
                "enabled": channel.enabled,
            }
        )
        return _edit(request, channel, form)

    def update(data):
        return services.notification_channel_update(
            channel=channel, actor=request.user, ip_address=client_ip(request), **data
        )

    result, form = _submit(_typed(request), channel.kind, update, channel=channel)
    if result is None:
        return _edit(request, channel, form)
    messages.success(request, f"“{result.name}” is saved.")
    return redirect("/notifications")


def _edit(request: HttpRequest, channel: NotificationChannel, form: Form) -> HttpResponse:
    context = {"channel": channel, "form": form, "event_choices": EVENT_CHOICES}
    return render(request, "agents/notification_edit.html", context, status=form.status)
