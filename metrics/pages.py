"""The metrics app's dashboard pages (UI.md): the overview (and how to connect a first agent), the
metric explorer, one agent's charts (a fragment for the agent page) and the metric configs.

Every read goes through the selectors the API uses (metrics.dashboard, metrics.selectors, the
query API's own parameter validation); every write through the API's serializer and the same
service (metrics.services, apikeys.services); "Test on sample lines" runs metrics.trial like
`POST /metric-configs/test`.
"""

import json
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render

from accounts.browser import page, role_allows, safe_next
from accounts.models import Role
from agents import selectors as agent_selectors
from agents.models import Agent
from apikeys import services as key_services
from apikeys.serializers import APIKeyCreateSerializer
from logfleet import clock, errors
from logfleet.api.client import client_ip
from logfleet.pages import Form, error_page, is_htmx, page_number, paginate, submit
from metrics import dashboard, explorer, selectors, services, trial
from metrics.models import MetricConfig
from metrics.serializers import MetricConfigUpdateSerializer, MetricConfigWriteSerializer, RuleTestSerializer

ATTENTION_LIMIT = 10
PANEL_CHARTS = 12
MAX_METRIC_NAMES = 1000
AGENT_CHOICES = 100  # the explorer's agent menu; an agent page's charts link to the explorer for any agent

# --- the overview ------------------------------------------------------------------------------

# What an agent's key needs (API.md section 6), and what the agent needs besides this repository's
# edge/agent/ and metrics/engine/: the pins of requirements.txt (a test keeps them equal).
EDGE_PERMISSIONS = ["edge:register", "edge:heartbeat", "edge:metrics", "edge:stream"]
AGENT_PACKAGES = ("google-re2==1.1.20251105", "websockets==15.0.1")
FIRST_KEY_NAME = "first agent"
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def server_url(request) -> str:
    """The URL an agent should talk to: PUBLIC_URL when it names a deployment, else the address
    this browser reached the server at."""
    if urlsplit(settings.PUBLIC_URL).hostname not in _LOCAL_HOSTS:
        return settings.PUBLIC_URL.rstrip("/")
    return f"{request.scheme}://{request.get_host()}"


def agent_commands(*, server: str, key: str | None) -> dict[str, str]:
    """The reference agent's command lines (README, "Run the agent on another machine")."""
    return {
        "install": "python3 -m venv .agent-venv && .agent-venv/bin/pip install " + " ".join(AGENT_PACKAGES),
        "run": (
            f"LOGFLEET_API_KEY={key or f'lf_{settings.API_KEY_ENV}_...'} .agent-venv/bin/python -m edge.agent "
            f'--server {server} --name "$(hostname)" --source nginx=/var/log/nginx/access.log'
        ),
    }


def _overview_context(request, *, new_key: str | None = None, key_form: Form | None = None) -> dict:
    organization_id = request.user.organization_id
    summary = dashboard.summary(organization_id=organization_id)
    context = {"summary": summary, "onboarding": summary["agents"]["total"] == 0 or new_key is not None}
    if context["onboarding"]:
        context.update(
            commands=agent_commands(server=server_url(request), key=new_key),
            new_key=new_key,
            key_form=key_form or Form(),
            can_create_key=role_allows(request.user.role, Role.ADMIN),
            permissions=EDGE_PERMISSIONS,
        )
    else:
        context["attention"], context["attention_total"] = agent_selectors.agents_needing_attention(
            organization_id=organization_id, limit=ATTENTION_LIMIT
        )
    return context


@page()
def overview(request):
    """The fleet at a glance (`GET /dashboard/summary`'s numbers) and the agents that need attention;
    an organization without agents is shown how to connect its first one."""
    if is_htmx(request) and request.GET.get("wait") == "first-agent":
        # The onboarding page asks every few seconds; once an agent has registered, it shows the fleet.
        if Agent.objects.filter(organization_id=request.user.organization_id).exists():
            response = HttpResponse()
            response["HX-Redirect"] = "/"
            return response
        return HttpResponse(status=204)
    context = _overview_context(request)
    if is_htmx(request):  # the tiles refreshing themselves
        if context["onboarding"]:
            response = HttpResponse()
            response["HX-Redirect"] = "/"
            return response
        return render(request, "metrics/overview_fleet.html", context)
    return render(request, "metrics/overview.html", context)


@page(Role.ADMIN, methods=("POST",))
def first_agent_key(request):
    """A key with the edge permissions, created as `POST /api-keys` creates one; its raw value is
    shown this once, filled into the agent's command line."""
    actor = key_services.Actor(user=request.user, ip_address=client_ip(request))

    def create(data):
        return key_services.api_key_create(organization=request.user.organization, actor=actor, **data)

    created, form = submit(
        {"name": FIRST_KEY_NAME, "permissions": EDGE_PERMISSIONS}, create, serializer_class=APIKeyCreateSerializer
    )
    raw = created[1] if created else None
    context = _overview_context(request, new_key=raw, key_form=form)
    context["onboarding"] = True
    template = "metrics/onboarding.html" if is_htmx(request) else "metrics/overview.html"
    return render(request, template, context, status=form.status)


# --- the metric explorer and the agent panel ---------------------------------------------------


@page()
def metric_explorer(request):
    """One metric over time: name, range, step, aggregation, group by, agent; validated exactly as
    `GET /metrics/query` validates, with its warnings."""
    organization_id = request.user.organization_id
    names = list(selectors.names(organization_id=organization_id)[:MAX_METRIC_NAMES])
    kinds = {row["name"]: row["type"] for row in names}
    context = {"names": names, "ranges": explorer.RANGE_CHOICES, "chart": None}
    if not kinds:
        return render(request, "metrics/explorer.html", context)
    choice = explorer.resolve(request.GET, kinds=kinds)
    if choice.params is not None:
        try:
            context["chart"] = explorer.chart(
                organization_id=organization_id, params=choice.params, kind=kinds.get(choice.values["name"])
            )
        except errors.Invalid as exc:  # an aggregation the metric's type does not have
            choice.errors.update(exc.details)
    name = choice.values["name"]
    if name not in kinds:  # what the URL asked for stays chosen, with the API's warning about it
        names.append({"name": name, "type": "no series"})
    group_keys = ["agent_id", *selectors.label_keys(organization_id=organization_id, name=name)]
    if choice.values["group_by"] and choice.values["group_by"] not in group_keys:
        group_keys.append(choice.values["group_by"])  # what the URL asked for stays chosen
    context.update(
        form=Form(data=choice.values, errors=choice.errors),
        aggs=explorer.agg_choices(kinds.get(name)),
        group_keys=group_keys,
        agents=selectors.agents_with_metric(
            organization_id=organization_id, name=name, limit=AGENT_CHOICES, include=choice.values["agent_id"]
        ),
        agent_choices=AGENT_CHOICES,
    )
    return render(request, "metrics/explorer.html", context, status=400 if choice.errors else 200)


@page()
def agent_panel(request):
    """The charts of one agent's metrics over the last hour (the agent page loads this with htmx):
    one figure per metric name, at most PANEL_CHARTS."""
    organization_id = request.user.organization_id
    try:
        agent = Agent.objects.filter(organization_id=organization_id, pk=request.GET.get("agent_id")).first()
    except (ValueError, ValidationError):
        agent = None
    if agent is None:
        return error_page(request, 404, "There is no such agent in your organization.")
    names, total = selectors.agent_metric_names(agent=agent, limit=PANEL_CHARTS)
    kinds = {row["name"]: row["type"] for row in names}
    charts = []  # (chart, its data's element id, its link to the explorer)
    for index, (name, kind) in enumerate(kinds.items()):
        asked = {"name": name, "agent_id": str(agent.pk)}
        choice = explorer.resolve(asked, kinds=kinds)
        chart = explorer.chart(organization_id=organization_id, params=choice.params, kind=kind, kind_known=True)
        charts.append((chart, f"agent-chart-{index}", "/metrics?" + urlencode(asked)))
    context = {"agent": agent, "charts": charts, "total": total}
    template = "metrics/panel.html" if is_htmx(request) else "metrics/panel_page.html"
    return render(request, template, context)


# --- metric configs (log-to-metric rules) ------------------------------------------------------


@page()
def rules(request):
    """The metric configs, by name, 50 a page; members enable and disable them here."""
    try:
        number = page_number(request.GET.get("page"))
    except errors.Invalid as exc:
        return error_page(request, 400, f"page {exc.details['page']}")
    queryset = selectors.metric_config_list(organization_id=request.user.organization_id)
    context = {"paged": paginate(queryset, number), "can_write": role_allows(request.user.role, Role.MEMBER)}
    return render(request, "metrics/rules.html", context)


def _typed(post) -> dict:
    """The rule editor's fields as typed (shown again as they were when something is wrong)."""
    data = {key: post.get(key, "") for key in ("name", "description", "log_source", "agent_selector", "metrics")}
    data["enabled"] = post.get("enabled") == "on"
    data["version"] = post.get("version", "")
    data["lines"] = post.get("lines", "")
    return data


def _as_typed(config: MetricConfig) -> dict:
    return {
        "name": config.name,
        "description": config.description,
        "log_source": config.log_source,
        "agent_selector": json.dumps(config.agent_selector) if config.agent_selector else "",
        "metrics": json.dumps(config.metrics, indent=2),
        "enabled": config.enabled,
        "version": config.version,
        "lines": "",
    }


def _json(typed: dict, name: str, errors: dict, *, blank=None):
    """A JSON field of the editor, decoded; its syntax error lands beside it."""
    text = typed[name].strip()
    if not text and blank is not None:
        return blank
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        errors[name] = f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        return None


def _config_body(typed: dict) -> tuple[dict, dict]:
    """The editor's fields as the API's body (what `POST /metric-configs` takes), and JSON syntax errors."""
    errors: dict[str, str] = {}
    body = {key: typed[key] for key in ("name", "description", "log_source")}
    body["log_source"] = body["log_source"].strip() or "*"
    body["enabled"] = typed["enabled"]
    body["agent_selector"] = _json(typed, "agent_selector", errors, blank={})
    body["metrics"] = _json(typed, "metrics", errors)
    return body, errors


def _sample_lines(typed: dict) -> list[str]:
    return [line for line in typed["lines"].splitlines() if line]


def _editor(request, *, config: MetricConfig | None, form: Form, status: int = 200, **extra):
    rule_errors = sorted(
        (key, message) for key, message in form.errors.items() if key.startswith(("metrics.", "agent_selector."))
    )
    context = {
        "config": config,
        "form": form,
        "rule_errors": rule_errors,
        "can_write": role_allows(request.user.role, Role.MEMBER),
        **extra,
    }
    return render(request, "metrics/rule_edit.html", context, status=status)


def _config_or_404(request, config_id) -> MetricConfig | None:
    return MetricConfig.objects.filter(organization_id=request.user.organization_id, pk=config_id).first()


@page(Role.MEMBER, methods=("GET", "HEAD", "POST"))
def rule_new(request):
    if request.method != "POST":
        return _editor(request, config=None, form=Form(data={"log_source": "*", "enabled": True}))
    typed = _typed(request.POST)
    body, json_errors = _config_body(typed)
    if json_errors:
        return _editor(request, config=None, form=Form(data=typed, errors=json_errors), status=400)

    def create(data):
        return services.metric_config_create(
            organization=request.user.organization, actor=request.user, ip_address=client_ip(request), **data
        )

    config, form = submit(body, create, serializer_class=MetricConfigWriteSerializer)
    if config is None:
        form.data = typed
        return _editor(request, config=None, form=form, status=form.status)
    messages.success(request, f"Metric config {config.name} is created (version {config.version}).")
    return redirect(f"/rules/{config.pk}")


@page(methods=("GET", "HEAD", "POST"))
def rule_edit(request, config_id):
    """One config: every role reads it and tries it on sample lines; members change it (the version
    they read must still be the current one: otherwise nothing is overwritten)."""
    config = _config_or_404(request, config_id)
    if config is None:
        return error_page(request, 404, "There is no such metric config in your organization.")
    if request.method != "POST":
        return _editor(request, config=config, form=Form(data=_as_typed(config)))
    if not role_allows(request.user.role, Role.MEMBER):
        return error_page(
            request, 403, f"Changing metric configs needs the member role; you are a {request.user.role}."
        )
    typed = _typed(request.POST)
    body, json_errors = _config_body(typed)
    if json_errors:
        return _editor(request, config=config, form=Form(data=typed, errors=json_errors), status=400)
    body["version"] = typed["version"]

    def update(data):
        data = dict(data)
        version = data.pop("version")
        return services.metric_config_update(
            config=config, version=version, actor=request.user, ip_address=client_ip(request), **data
        )

    saved, form = submit(body, update, serializer_class=MetricConfigUpdateSerializer)
    if saved is None:
        form.data = typed
        current = _config_or_404(request, config_id)
        conflict = form.status == 409 and current is not None and str(current.version) != str(typed["version"])
        return _editor(request, config=current or config, form=form, status=form.status, conflict=conflict)
    messages.success(request, f"Metric config {saved.name} is saved (version {saved.version}).")
    return redirect(f"/rules/{saved.pk}")


@page(Role.MEMBER, methods=("POST",))
def rule_enabled(request, config_id):
    """Enable or disable a config from the list (a change like any other: it needs the current version)."""
    back = safe_next(request, request.POST.get("next"), "/rules")
    config = _config_or_404(request, config_id)
    if config is None:
        return error_page(request, 404, "There is no such metric config in your organization.")
    wanted = request.POST.get("enabled") == "true"

    def change(data):
        return services.metric_config_update(
            config=config,
            version=data["version"],
            actor=request.user,
            ip_address=client_ip(request),
            enabled=data["enabled"],
        )

    saved, form = submit(
        {"enabled": wanted, "version": request.POST.get("version", "")},
        change,
        serializer_class=MetricConfigUpdateSerializer,
        serializer_kwargs={"partial": True},
    )
    if saved is None:
        problem = form.general or "; ".join(f"{key}: {message}" for key, message in form.errors.items())
        messages.error(request, f"{config.name} is unchanged: {problem}")
    else:
        messages.success(request, f"{saved.name} is {'enabled' if saved.enabled else 'disabled'}.")
    return redirect(back)


@page(Role.MEMBER, methods=("POST",))
def rule_delete(request, config_id):
    config = _config_or_404(request, config_id)
    if config is None:
        return error_page(request, 404, "There is no such metric config in your organization.")
    services.metric_config_delete(config=config, actor=request.user, ip_address=client_ip(request))
    messages.success(request, f"Metric config {config.name} is deleted.")
    return redirect("/rules")


@page(methods=("POST",))
def rules_test(request):
    """What each rule of the editor would extract from the pasted lines, before anything is saved
    (`POST /metric-configs/test`: every role may; nothing changes)."""
    typed = _typed(request.POST)
    errors: dict[str, str] = {}
    rules_body = _json(typed, "metrics", errors)
    result, form = None, Form(errors=errors, status=400)
    if not errors:

        def run(data):
            compiled = trial.rules_compile(data["metrics"])
            return trial.rules_try(rules=compiled, lines=data["lines"], timestamp=round(clock.unix(), 3))

        body = {"metrics": rules_body, "lines": _sample_lines(typed)}
        result, form = submit(body, run, serializer_class=RuleTestSerializer)
    context = {"result": result, "test_errors": sorted(form.errors.items())}
    if is_htmx(request):
        # The editor's preview. htmx swaps in a 400 (logfleet/static/logfleet/app.js) but no other
        # refusal: a test too large to run (413) is a 400 here, its message in the region all the same.
        return render(request, "metrics/test_results.html", context, status=200 if result is not None else 400)
    return render(request, "metrics/test_page.html", context, status=form.status if result is None else 200)
