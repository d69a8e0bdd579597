"""The accounts app's dashboard pages (UI.md): sign in and out, register, forgot and reset a
password (also how an invitation is accepted), the person's own account, and for admins the
members and the audit log.

They validate with the API's serializers and call the same services as accounts.views; the
anonymous forms are limited like the API's Authentication group (per client address, and per
target account for sign-in and the password forms).
"""

import uuid

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.browser import page, role_allows, safe_next, sign_in, sign_out, signed_in
from accounts.models import AUDIT_ACTIONS, AuditEvent, PasswordTokenPurpose, Role, UserStatus
from accounts.serializers import (
    AuditPageFilterSerializer,
    ChangePasswordSerializer,
    ForgotPasswordSerializer,
    LoginSerializer,
    MemberInviteSerializer,
    MemberUpdateSerializer,
    ProfileUpdateSerializer,
    RegisterSerializer,
    ResetPasswordSerializer,
)
from logfleet import errors
from logfleet.api import ratelimit
from logfleet.api.client import client_ip
from logfleet.api.exceptions import flatten_errors
from logfleet.pages import Form, error_page, form_data, page_number, paginate, submit


def _limited(request, *, account: str | None = None):
    """Count an anonymous form's submission like the API's Authentication group does."""
    ratelimit.enforce(request, group="auth", key=ratelimit.ip_key(request))
    if account is not None:
        ratelimit.enforce_account(request, account)


@require_http_methods(["GET", "HEAD", "POST"])
def login(request):
    next_path = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if request.method != "POST":
        if signed_in(request):
            return redirect(next_path)
        return render(request, "accounts/login.html", {"form": Form(), "next": next_path})

    def log_in(data):
        _limited(request, account=data["email"])
        return services.user_login(email=data["email"], password=data["password"], ip_address=client_ip(request))

    data = form_data(request.POST)
    result, form = submit(data, log_in, serializer_class=LoginSerializer)
    if result is None:
        form.data.pop("password", None)
        return render(request, "accounts/login.html", {"form": form, "next": next_path}, status=form.status)
    _user, pair = result
    sign_in(request, pair.session_id)
    return redirect(next_path)


@require_POST
def logout(request):
    found = signed_in(request)
    if found is not None:
        user, session = found
        services.user_logout(user=user, session=session, ip_address=client_ip(request))
    sign_out(request)
    messages.info(request, "You are signed out.")
    return redirect("/login")


@require_http_methods(["GET", "HEAD", "POST"])
def register(request):
    if request.method != "POST":
        return render(request, "accounts/register.html", {"form": Form()})

    def create(data):
        _limited(request)
        return services.organization_register(**data, ip_address=client_ip(request))

    result, form = submit(form_data(request.POST), create, serializer_class=RegisterSerializer)
    if result is None:
        form.data.pop("password", None)
        return render(request, "accounts/register.html", {"form": form}, status=form.status)
    _user, pair = result
    sign_in(request, pair.session_id)
    return redirect("/")


@require_http_methods(["GET", "HEAD", "POST"])
def forgot_password(request):
    if request.method != "POST":
        return render(request, "accounts/forgot_password.html", {"form": Form()})

    def ask(data):
        _limited(request, account=data["email"])
        services.password_reset_request(email=data["email"], ip_address=client_ip(request))
        return True

    sent, form = submit(form_data(request.POST), ask, serializer_class=ForgotPasswordSerializer)
    return render(request, "accounts/forgot_password.html", {"form": form, "sent": bool(sent)}, status=form.status)


@require_http_methods(["GET", "HEAD", "POST"])
def reset_password(request):
    """Choose a new password from an emailed link: a reset, or an invitation's acceptance."""
    token = request.POST.get("token") or request.GET.get("token") or ""
    invitation = services.password_token_purpose(token=token) == PasswordTokenPurpose.INVITE
    context = {"token": token, "invitation": invitation}
    if request.method != "POST":
        return render(request, "accounts/reset_password.html", {**context, "form": Form()})

    def confirm(data):
        _limited(request, account=services.password_token_email(token=data["token"]))
        return services.password_reset_confirm(
            token=data["token"], new_password=data["new_password"], ip_address=client_ip(request)
        )

    user, form = submit(form_data(request.POST), confirm, serializer_class=ResetPasswordSerializer)
    if user is None:
        form.data.pop("new_password", None)
        return render(request, "accounts/reset_password.html", {**context, "form": form}, status=form.status)
    messages.success(request, "Your password is set. Sign in with it.")
    return redirect("/login")


@page(methods=("GET", "HEAD", "POST"))
def account(request):
    """The person's name, their password (a change ends every other session) and sign-out everywhere."""
    user = request.user
    profile, password = Form(data={"name": user.name}), Form()
    if request.method == "POST":
        ip = client_ip(request)
        action = request.POST.get("action")
        if action == "profile":

            def rename(data):
                return services.user_update_profile(user=user, name=data["name"])

            done, profile = submit(form_data(request.POST), rename, serializer_class=ProfileUpdateSerializer)
            if done is not None:
                messages.success(request, "Your name is saved.")
                return redirect("/account")
        elif action == "password":

            def change(data):
                ratelimit.enforce(request, group="auth", key=f"user:{user.pk}")
                return services.password_change(user=user, ip_address=ip, **data)

            pair, password = submit(form_data(request.POST), change, serializer_class=ChangePasswordSerializer)
            if pair is not None:
                sign_in(request, pair.session_id)  # every other session has ended; this one goes on
                messages.success(request, "Your password is changed. Every other session is signed out.")
                return redirect("/account")
            password.data = {}
        elif action == "everywhere":
            services.user_logout_everywhere(user=user, ip_address=ip)
            sign_out(request)
            messages.info(request, "You are signed out everywhere.")
            return redirect("/login")
        status = max(profile.status, password.status)
        return render(request, "accounts/account.html", {"profile": profile, "password": password}, status=status)
    return render(request, "accounts/account.html", {"profile": profile, "password": password})


# --- admins: members and the audit log --------------------------------------------------------

# The body each row button of the members table sends to the service (MemberUpdateSerializer's).
_MEMBER_CHANGES = {
    "role": lambda post: {"role": post.get("role")},
    "deactivate": lambda post: {"status": UserStatus.DEACTIVATED},
    "activate": lambda post: {"status": UserStatus.ACTIVE},
}


@page(Role.ADMIN, methods=("GET", "HEAD", "POST"))
def members(request):
    """Invite a person (the invitation email), change a role, deactivate or reactivate, remove: the
    services of POST, PATCH and DELETE /organization/members, which keep the last active admin."""
    if request.method != "POST":
        return _members(request)
    action = request.POST.get("action")
    if action == "invite":
        return _invite(request)
    if action != "remove" and action not in _MEMBER_CHANGES:
        return error_page(request, 400, "The form did not say what to do.")
    member = _member(request)
    if member is None:
        return error_page(request, 404, "There is no such member in your organization.")
    said, form = _change_member(request, member, action)
    if said is None:
        problem = form.general or "; ".join(form.errors.values())
        return _members(request, refused={"member": member.pk, "message": problem}, status=form.status)
    messages.success(request, said)
    if member.pk == request.user.pk:
        me = selectors.member_list(organization_id=request.user.organization_id).filter(pk=member.pk).first()
        if me is None or not me.is_active or not role_allows(me.role, Role.ADMIN):
            return redirect("/")  # stepping down (or out) leaves this page to the admins who remain
    return redirect(request.get_full_path())


def _invite(request):
    def invite(data):
        return services.member_invite(
            organization=request.user.organization, actor=request.user, ip_address=client_ip(request), **data
        )

    invited, form = submit(form_data(request.POST), invite, serializer_class=MemberInviteSerializer)
    if invited is None:
        return _members(request, invite=form, status=form.status)
    messages.success(request, f"{invited.email} is invited as {invited.role}: the invitation email is on its way.")
    return redirect("/members")


def _change_member(request, member, action: str):
    """A row button's service call: (what to tell the admin, the form), or (None, the form holding
    the service's refusal)."""
    ip = client_ip(request)
    if action == "remove":

        def remove(_data):
            services.member_delete(member=member, actor=request.user, ip_address=ip)
            return f"{member.name} ({member.email}) is removed."

        return submit({}, remove)

    def update(data):
        changed = services.member_update(
            member=member, actor=request.user, role=data.get("role"), status=data.get("status"), ip_address=ip
        )
        if action == "role":
            return f"{changed.name} is now {changed.role}."
        if changed.status == UserStatus.DEACTIVATED:
            return f"{changed.name} is deactivated and signed out everywhere."
        return f"{changed.name} is active again."

    return submit(_MEMBER_CHANGES[action](request.POST), update, serializer_class=MemberUpdateSerializer)


def _member(request):
    try:
        member_id = uuid.UUID(request.POST.get("member", ""))
    except ValueError:
        return None
    return selectors.member_list(organization_id=request.user.organization_id).filter(pk=member_id).first()


def _members(request, *, invite: Form | None = None, refused: dict | None = None, status: int = 200):
    try:
        number = page_number(request.GET.get("page"))
    except errors.Invalid:
        return error_page(request, 400, "A page number is a whole number from 1.")
    context = {
        "members": paginate(selectors.member_list(organization_id=request.user.organization_id), number),
        "invite": invite or Form(data={"role": Role.MEMBER}),
        "refused": refused,
        "roles": Role.values,
        "row_actions": ("deactivate", "activate", "remove"),
    }
    return render(request, "accounts/members.html", context, status=status)


@page(Role.ADMIN)
def audit(request):
    """The audit log, newest first, filtered by action and actor: the read of GET /audit-events."""
    given = {name: request.GET[name].strip() for name in ("action", "actor") if request.GET.get(name, "").strip()}
    filters = AuditPageFilterSerializer(data=given)
    form = Form(data=given)
    try:
        number = page_number(request.GET.get("page"))
    except errors.Invalid:
        return error_page(request, 400, "A page number is a whole number from 1.")
    if filters.is_valid():
        events = selectors.audit_event_list(organization_id=request.user.organization_id, **filters.validated_data)
    else:
        form.errors = flatten_errors(filters.errors)
        form.status = 400
        events = AuditEvent.objects.none()
    context = {
        "events": paginate(events, number),
        "filters": form,
        "actions": AUDIT_ACTIONS,
        "emails": selectors.member_list(organization_id=request.user.organization_id).values_list("email", flat=True),
    }
    return render(request, "accounts/audit.html", context, status=form.status)
