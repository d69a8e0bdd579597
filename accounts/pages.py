"""The accounts app's dashboard pages (UI.md): sign in and out, register, forgot and reset a
password (also how an invitation is accepted), and the person's own account.

They validate with the API's serializers and call the same services as accounts.views; the
anonymous forms are limited like the API's Authentication group (per client address, and per
target account for sign-in and the password forms).
"""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.browser import page, safe_next, sign_in, sign_out, signed_in
from accounts.models import PasswordTokenPurpose
from accounts.serializers import (
    ChangePasswordSerializer,
    ForgotPasswordSerializer,
    LoginSerializer,
    ProfileUpdateSerializer,
    RegisterSerializer,
    ResetPasswordSerializer,
)
from logfleet.api import ratelimit
from logfleet.api.client import client_ip
from logfleet.pages import Form, form_data, submit


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
