"""The streaming app's dashboard pages (UI.md): the organization's stream sessions, starting a live
tail from the agent page's form, watching one, and stopping it.

They validate with the API's serializers and call the same services as streaming.views; the live
tail itself is streaming/static/streaming/live.js on the viewer WebSocket, authenticated by the
browser's session (streaming.consumers.ViewerAuthMiddleware): no token is ever put in a URL.
"""

import uuid

from django.contrib import messages
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.browser import page, role_allows
from accounts.models import Role
from agents import selectors as agent_selectors
from logfleet import errors
from logfleet.api.client import client_ip
from logfleet.pages import Form, error_page, is_htmx, page_number, paginate, submit
from streaming import selectors, services
from streaming.models import OPEN_STATUSES, SessionStatus, StreamSession
from streaming.serializers import SessionFilterSerializer, StreamStartSerializer

# The most lines the live tail keeps in the page (older ones leave the DOM), and holds back while paused.
MAX_LINES = 2000

# Why a session ended, in words (the page, and live.js when the socket says so).
END_REASONS = {
    "stopped": "Stopped by a person",
    "timeout": "Its time ran out",
    "agent_deleted": "The agent was deleted",
    "idle": "Nobody was watching it",
}


@require_http_methods(["GET", "HEAD", "POST"])
def live(request):
    """`/live`: the sessions (every role); a POST starts one (members)."""
    return start(request) if request.method == "POST" else sessions(request)


def _row(session: StreamSession, now) -> dict:
    status, end_reason, stopped_at = session.effective(now)
    return {
        "session": session,
        "status": status,
        "end_reason": end_reason,
        "stopped_at": stopped_at,
        "open": status in OPEN_STATUSES,
    }


@page()
def sessions(request):
    form = Form(data={key: request.GET.get(key, "") for key in ("status", "agent_id")})
    filters = SessionFilterSerializer(data={key: value for key, value in form.data.items() if value})
    if filters.is_valid():
        queryset = selectors.session_list(organization_id=request.user.organization_id, **filters.validated_data)
    else:
        form.errors = {key: str(problems[0]) for key, problems in filters.errors.items()}
        form.status = 400
        queryset = StreamSession.objects.none()
    now = timezone.now()
    try:
        rows = paginate(queryset.select_related("agent", "created_by"), page_number(request.GET.get("page")))
    except errors.Invalid as exc:
        return error_page(request, 400, f"page {exc.details['page']}")
    context = {
        "form": form,
        "page": rows,
        "rows": [_row(session, now) for session in rows.items],
        "statuses": SessionStatus.values,
        "reasons": END_REASONS,
    }
    return render(request, "streaming/sessions.html", context, status=form.status)


def _start_body(post: QueryDict) -> dict:
    """The agent page's form as the body of POST /stream/start: `level` (one or more fields, each may
    list several levels, comma- or space-separated), `source`, `pattern`, and the optional
    `timeout_seconds` and `filter_query`."""
    levels = [level for value in post.getlist("level") for level in value.replace(",", " ").split()]
    filters = {"level": levels, "source": post.get("source", "").strip(), "pattern": post.get("pattern", "")}
    body = {"agent_id": post.get("agent_id", ""), "filters": {key: value for key, value in filters.items() if value}}
    for optional in ("timeout_seconds", "filter_query"):
        if post.get(optional, "").strip():
            body[optional] = post[optional].strip()
    return body


def _reasons(form: Form) -> str:
    """A refused start in one sentence: what is wrong with the request as a whole, and with each field."""
    fields = {"timeout_seconds": "Timeout", "filter_query": "Query", "filters": "Filters"}
    said = [form.general] if form.general else []
    for key, problem in form.errors.items():
        top = key.split(".")[0]
        if top in fields:
            name = fields[top] if top != "filters" or key == "filters" else key.split(".")[1].capitalize()
            said.append(f"{name}: {problem}")
    return " ".join(said) or "The request was not valid."


@page(Role.MEMBER, methods=("POST",))
def start(request):
    """Start a live tail from the agent page's form. The agent page cannot show a refusal beside
    the form, so it is said there as a message (the agent offline, too many sessions, a bad filter)."""
    body = _start_body(request.POST)
    try:
        agent_id = uuid.UUID(body["agent_id"])
    except ValueError:
        return error_page(request, 400, "agent_id must be an agent's id.")

    def begin(data):
        agent = agent_selectors.agent_get(organization_id=request.user.organization_id, agent_id=data["agent_id"])
        return services.stream_start(
            agent=agent,
            user=request.user,
            timeout_seconds=data["timeout_seconds"],
            filters=data["filters"],
            filter_query=data["filter_query"],
            ip_address=client_ip(request),
        )

    session, form = submit(body, begin, serializer_class=StreamStartSerializer)
    if session is None:
        if form.status == 404:
            return error_page(request, 404, "There is no such agent in your organization.")
        messages.error(request, f"The live tail did not start. {_reasons(form)}")
        return redirect(f"/agents/{agent_id}")
    return redirect(f"/live/{session.pk}")


@page()
def tail(request, session_id):
    """`/live/<id>`: the live tail of one session (live.js), or how it ended."""
    try:
        session = selectors.session_get(organization_id=request.user.organization_id, session_id=session_id)
    except errors.NotFound:
        return error_page(request, 404, "There is no such stream session in your organization.")
    status, end_reason, stopped_at = session.effective()
    is_open = status in OPEN_STATUSES
    seconds_left = max(0, round((session.expires_at - timezone.now()).total_seconds())) if is_open else 0
    config = {
        "socket_path": f"/api/v1/stream/ws/{session.pk}",
        "open": is_open,
        "status": status,
        "end_reason": end_reason,
        "seconds_left": seconds_left,
        "lines_dropped": session.lines_dropped,
        "max_lines": MAX_LINES,
        "reasons": END_REASONS,
    }
    context = {
        "session": session,
        "status": status,
        "end_reason": end_reason,
        "stopped_at": stopped_at,
        "is_open": is_open,
        "can_stop": is_open and role_allows(request.user.role, Role.MEMBER),
        "config": config,
        "reasons": END_REASONS,
        "max_lines": f"{MAX_LINES:,}",
        "time_left": f"{seconds_left // 60}:{seconds_left % 60:02d}",
    }
    return render(request, "streaming/tail.html", context)


@page(Role.MEMBER, methods=("POST",))
def stop(request, session_id):
    """Stop a session (as POST /stream/stop: repeating it is harmless). The live tail posts it with
    htmx and hears the end on its socket; without JavaScript the page comes back saying so."""
    try:
        session = selectors.session_get(organization_id=request.user.organization_id, session_id=session_id)
    except errors.NotFound:
        return error_page(request, 404, "There is no such stream session in your organization.")
    services.stream_stop(session=session, user=request.user, ip_address=client_ip(request))
    if is_htmx(request):
        return HttpResponse(status=204)
    messages.success(request, "The live tail is stopped.")
    return redirect(f"/live/{session.pk}")
