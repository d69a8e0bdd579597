"""The signed-in browser (UI.md, Sessions): a LogFleet session, held in Django's session, and the
gate every dashboard page passes.

Signing in starts an AuthSession exactly like `POST /auth/login` (audited; ended by logout, a
password change or reset, or a deactivation); Django's session cookie (HttpOnly, SameSite=Lax,
Secure under HTTPS) carries only its id. Every request looks the session up again, so a session
ended anywhere (the API's logout, another browser's "sign out everywhere", an admin's
deactivation) signs the browser out at its next click, and the role is always the current one.
"""

from functools import wraps
from importlib import import_module
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from accounts.models import Role
from accounts.services import auth_session_standing, session_open
from logfleet import realtime
from logfleet.errors import Unauthenticated
from logfleet.pages import error_page, is_htmx

SESSION_KEY = "logfleet_session_id"

# What each role may do on the pages, as in the API: viewer reads, member also writes the fleet
# (agents, configs, rules, streams), admin also keys, members, the audit log and notifications.
_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}


def role_allows(role: str, needed: str) -> bool:
    return _RANK.get(role, -1) >= _RANK[needed]


def sign_in(request: HttpRequest, session_id: str) -> None:
    """Bind this browser to the LogFleet session `session_id` (a fresh Django session key)."""
    request.session.cycle_key()
    request.session[SESSION_KEY] = str(session_id)


def sign_out(request: HttpRequest) -> None:
    request.session.flush()


def signed_in(request: HttpRequest):
    """(user, AuthSession) of this browser, or None; a session that has ended is forgotten."""
    if hasattr(request, "_logfleet_signed_in"):
        return request._logfleet_signed_in
    found = None
    session_id = request.session.get(SESSION_KEY)
    if session_id:
        try:
            found = session_open(session_id)
        except Unauthenticated:
            request.session.flush()
    request._logfleet_signed_in = found
    return found


# --- the same browser on the viewer WebSocket (streaming.consumers) ----------------------------

BROWSER_SIGNED_OUT = "This browser is signed out; sign in again"


def browser_session_id(session_key: str) -> str | None:
    """The LogFleet session id that the Django session `session_key` (a session cookie's value)
    holds, or None when that session is gone, expired or signed out."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    session_id = store.get(SESSION_KEY)
    return str(session_id) if session_id else None


def browser_authenticate(session_key: str):
    """(user, AuthSession) of the browser whose session cookie is `session_key`, or None."""
    session_id = browser_session_id(session_key)
    if session_id is None:
        return None
    try:
        return session_open(session_id)
    except Unauthenticated:
        return None


def browser_standing(session_key: str, *, session_id, organization_id) -> realtime.Standing:
    """Whether a browser's socket may stay open: its LogFleet session `session_id` still holds (why
    not, as for a token: logout, a password change, a deactivation...) and the browser is still
    signed in with it."""
    standing = auth_session_standing(session_id, organization_id=organization_id)
    if standing.ended:
        return standing
    if browser_session_id(session_key) != str(session_id):
        return realtime.Standing(ended=BROWSER_SIGNED_OUT)
    return standing


def login_url(request: HttpRequest) -> str:
    return "/login?" + urlencode({"next": request.get_full_path()})


def safe_next(request: HttpRequest, candidate: str | None, default: str = "/") -> str:
    """Where to go after signing in: a path of this site only (never another origin)."""
    if candidate and candidate.startswith("/") and url_has_allowed_host_and_scheme(candidate, allowed_hosts=None):
        return candidate
    return default


def page(role: str = Role.VIEWER, *, methods: tuple[str, ...] = ("GET", "HEAD")):
    """A dashboard page for signed-in people of at least `role`.

    Anonymous → /login?next=<path> (an htmx request is told to go there with HX-Redirect);
    a role below `role` → the 403 page, nothing done. The view finds the person in
    `request.user` and their session in `request.auth_session`."""

    def decorate(view):
        @require_http_methods(list(methods))
        @wraps(view)
        def gated(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            found = signed_in(request)
            if found is None:
                if is_htmx(request):
                    response = HttpResponse(status=401)
                    response["HX-Redirect"] = login_url(request)
                    return response
                return redirect(login_url(request))
            request.user, request.auth_session = found
            if not role_allows(request.user.role, role):
                return error_page(request, 403, f"This needs the {role} role; you are a {request.user.role}.")
            return view(request, *args, **kwargs)

        gated.page_role = role
        return gated

    return decorate
