"""The agents app's dashboard pages (UI.md): the agents table and one agent's page.

They read through agents.selectors and write through agents.services, validating with the API's
own serializers, exactly like agents.views. Page GETs and the table's htmx refreshes are not
counted against the API's rate limits: a table refreshing itself for an hour never meets a 429.
"""

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils.cache import patch_vary_headers

from accounts.browser import page, role_allows
from accounts.models import Role
from agents import selectors, services
from agents.labels import labels_as_text, labels_from_text
from agents.models import Agent
from agents.serializers import AgentConfigUpdateSerializer, AgentFilterSerializer, AgentWriteSerializer
from logfleet import errors
from logfleet.api.client import client_ip
from logfleet.api.exceptions import flatten_errors
from logfleet.api.parsers import strict_loads
from logfleet.pages import Form, error_page, is_htmx, page_number, paginate, submit

# A column header's first click: names A→Z, times newest first.
_FIRST_ORDER = {"name": "name", "created_at": "-created_at", "last_heartbeat_at": "-last_heartbeat_at"}
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")


# --- the agents table ------------------------------------------------------------------------


def _list_filters(request: HttpRequest) -> tuple[dict, Form]:
    """The table's filters from the query string, validated by the API's AgentFilterSerializer
    (blank fields of the filter form mean "any"). Returns (the selector's arguments, the form)."""
    typed = {name: request.GET.get(name, "").strip() for name in ("status", "search", "ordering")}
    labels = [value.strip() for value in request.GET.getlist("label") if value.strip()]
    form = Form(data={**typed, "labels": labels})
    raw = {name: value for name, value in typed.items() if value}
    if labels:
        raw["label"] = labels
    serializer = AgentFilterSerializer(data=raw)
    if not serializer.is_valid():
        # "label.0" (one filter too long) belongs beside the label field like "label" does.
        for key, message in flatten_errors(serializer.errors).items():
            form.errors.setdefault(key.split(".")[0], message)
        form.status = 400
        return {}, form
    data = serializer.validated_data
    return {
        "status": data.get("status"),
        "labels": tuple(data.get("label", ())),
        "search": data.get("search"),
        "ordering": data["ordering"],
    }, form


def _sort_links(request: HttpRequest, ordering: str) -> dict:
    """Per sortable column: the query string its header links to (the other direction when it is
    the current order, back to page 1, filters kept) and its aria-sort."""
    links = {}
    for field, first in _FIRST_ORDER.items():
        current = ordering.lstrip("-") == field
        target = (ordering[1:] if ordering.startswith("-") else f"-{ordering}") if current else first
        params = request.GET.copy()
        params.pop("page", None)
        params["ordering"] = target
        links[field] = {
            "href": f"?{params.urlencode()}",
            "sort": ("descending" if ordering.startswith("-") else "ascending") if current else None,
        }
    return links


def _label_chips(request: HttpRequest, labels: list[str]) -> list[dict]:
    """The active label filters, each with the query string that drops it."""
    chips = []
    for index, label in enumerate(labels):
        params = request.GET.copy()
        params.pop("page", None)
        params.setlist("label", labels[:index] + labels[index + 1 :])
        chips.append({"text": label, "remove": f"?{params.urlencode()}"})
    return chips


@page()
def agent_list(request: HttpRequest) -> HttpResponse:
    """The agents table; an htmx request (the table refreshing itself) gets the table alone."""
    filters, form = _list_filters(request)
    paged = None
    if form.valid:
        try:
            number = page_number(request.GET.get("page"))
        except errors.Invalid as exc:
            form.errors.update(exc.details)
            form.status = 400
        else:
            queryset = selectors.agent_list(organization_id=request.user.organization_id, **filters)
            paged = paginate(queryset, number)
            for agent in paged.items:
                agent.label_items = sorted(agent.labels.items())
    context = {
        "form": form,
        "paged": paged,
        "statuses": ("online", "offline", "error"),
        "sorts": _sort_links(request, filters.get("ordering", selectors.DEFAULT_ORDERING)),
        "label_chips": _label_chips(request, form.data["labels"]),
        "filtered": any(form.data.get(name) for name in ("status", "search", "labels")),
    }
    template = "agents/_table.html" if is_htmx(request) else "agents/list.html"
    response = render(request, template, context, status=form.status)
    # The page and its fragment share a URL: a browser's cache must not serve one for the other.
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- one agent -------------------------------------------------------------------------------


def _agent_or_404(request: HttpRequest, agent_id) -> Agent | None:
    try:
        return selectors.agent_get(organization_id=request.user.organization_id, agent_id=agent_id)
    except errors.NotFound:
        return None


def _config_text(config: dict) -> str:
    return json.dumps(config, indent=2, sort_keys=True)


def _metric_value(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"


def _source(state: dict) -> dict:
    """A log source as its agent reported it, its counts made readable."""
    return {**state, "lines": _metric_value(state.get("lines", 0)), "bytes": filesizeformat(state.get("bytes", 0))}


def _detail(
    request: HttpRequest,
    agent: Agent,
    *,
    labels_form: Form | None = None,
    config_form: Form | None = None,
    conflict: dict | None = None,
    status: int = 200,
) -> HttpResponse:
    config = selectors.agent_config_get(agent=agent)
    context = {
        "agent": agent,
        "config": config,
        "config_text": _config_text(config["config"]),
        "can_write": role_allows(request.user.role, Role.MEMBER),
        "labels_form": labels_form or Form(data={"labels": labels_as_text(agent.labels)}),
        "config_form": config_form
        or Form(data={"config": _config_text(config["config"]), "version": config["version"]}),
        "label_items": sorted(agent.labels.items()),
        "sources": [_source(source) for source in agent.source_states],
        "system_metrics": [(name, _metric_value(value)) for name, value in sorted(agent.system_metrics.items())],
        "conflict": conflict,
        "levels": LEVELS,
    }
    return render(request, "agents/detail.html", context, status=status)


@page()
def agent_detail(request: HttpRequest, agent_id) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    if agent is None:
        return error_page(request, 404, "There is no such agent in your organization.")
    return _detail(request, agent)


@page(role=Role.MEMBER, methods=("POST",))
def agent_labels(request: HttpRequest, agent_id) -> HttpResponse:
    """Replace the agent's labels (PATCH /agents/{id} {labels})."""
    agent = _agent_or_404(request, agent_id)
    if agent is None:
        return error_page(request, 404, "There is no such agent in your organization.")
    text = request.POST.get("labels", "")
    try:
        data = {"labels": labels_from_text(text)}
    except errors.Invalid as exc:
        form = Form(data={"labels": text}, errors=dict(exc.details), status=400)
    else:

        def update(validated):
            return services.agent_update(agent=agent, actor=request.user, ip_address=client_ip(request), **validated)

        done, form = submit(data, update, serializer_class=AgentWriteSerializer, serializer_kwargs={"partial": True})
        form.data = {"labels": text}
        if done is not None:
            messages.success(request, "Labels saved.")
            return redirect(f"/agents/{agent.pk}")
    return _detail(request, agent, labels_form=form, status=form.status)


def _beside_the_config(problems: dict[str, str]) -> dict[str, str]:
    """The serializer's errors on the config form: "config.log_sources.0.path" and its like
    beside the one config field, the rest (the version) for the form as a whole."""
    config = [
        f"{key[len('config.') :]}: {message}" if key != "config" else message
        for key, message in problems.items()
        if key.split(".")[0] == "config"
    ]
    rest = [message for key, message in problems.items() if key.split(".")[0] != "config"]
    return {**({"config": "; ".join(config)} if config else {}), **({"__all__": " ".join(rest)} if rest else {})}


@page(role=Role.MEMBER, methods=("POST",))
def agent_config(request: HttpRequest, agent_id) -> HttpResponse:
    """Replace the agent's configuration (PUT /agents/{id}/config {version, config}): saved only
    when `version` is still the current one; otherwise nothing is written, the person's text is
    kept and the current version is shown beside it."""
    agent = _agent_or_404(request, agent_id)
    if agent is None:
        return error_page(request, 404, "There is no such agent in your organization.")
    text, version = request.POST.get("config", ""), request.POST.get("version", "")
    try:
        config = strict_loads(text)
    except ValueError as exc:
        form = Form(errors={"config": f"not valid JSON: {exc}"}, status=400)
    else:

        def save(validated):
            return services.agent_config_update(
                agent=agent, actor=request.user, ip_address=client_ip(request), **validated
            )

        done, form = submit({"version": version, "config": config}, save, serializer_class=AgentConfigUpdateSerializer)
        if done is not None:
            messages.success(request, f"Configuration saved as version {done.config_version}.")
            return redirect(f"/agents/{agent.pk}")
        form.errors = _beside_the_config(form.errors)
    form.data = {"config": text, "version": version}
    conflict = None
    if form.status == 409:
        agent = _agent_or_404(request, agent.pk)
        if agent is None:  # deleted in between
            return error_page(request, 404, "There is no such agent in your organization.")
        current = selectors.agent_config_get(agent=agent)
        if str(current["version"]) != version:  # someone saved in between
            conflict = {"version": current["version"], "text": _config_text(current["config"])}
            form.errors["__all__"] = (
                f"Not saved: someone saved version {current['version']} while you were editing version {version}, "
                "and nothing was overwritten. Your text is kept here, with the current configuration to compare; "
                f"saving it again replaces version {current['version']}."
            )
            form.data["version"] = current["version"]
    return _detail(request, agent, config_form=form, conflict=conflict, status=form.status)


@page(role=Role.MEMBER, methods=("POST",))
def agent_delete(request: HttpRequest, agent_id) -> HttpResponse:
    """Delete the agent (DELETE /agents/{id}): its open live tails end, its history stays."""
    agent = _agent_or_404(request, agent_id)
    if agent is None:
        return error_page(request, 404, "There is no such agent in your organization.")
    services.agent_delete(agent=agent, actor=request.user, ip_address=client_ip(request))
    messages.success(request, f"Agent {agent.name} deleted.")
    return redirect("/agents")
