"""The accounts pages over HTTP (UI.md): sign-in, register, the password forms, the account page,
sessions shared with the API, cookies, CSRF, the HTML 404 and the Content-Security-Policy."""

import re

import pytest
from django.core import mail
from django.test import Client

from accounts import services
from accounts.models import AuditEvent, AuthSession, Role
from accounts.tests.factories import PASSWORD, UserFactory
from logfleet import mailer
from logfleet.pages import CONTENT_SECURITY_POLICY
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db


def sign_in(client: Client, email: str, password: str = PASSWORD, next_path: str = ""):
    return client.post("/login", {"email": email, "password": password, "next": next_path})


def test_anonymous_visitor_is_sent_to_sign_in_and_back(admin_user):
    client = Client()
    r = client.get("/account")
    assert (r.status_code, r["Location"]) == (302, "/login?next=%2Faccount")
    page = client.get(r["Location"]).content.decode()
    assert 'for="f-email">Email<' in page and 'for="f-password">Password<' in page and ">Sign in<" in page
    r = sign_in(client, admin_user.email, next_path="/account")
    assert (r.status_code, r["Location"]) == (302, "/account")
    assert admin_user.email in client.get("/account").content.decode()


def test_sign_in_starts_an_audited_logfleet_session_with_safe_cookies(admin_user):
    client = Client()
    r = sign_in(client, admin_user.email)
    assert r.status_code == 302
    session = AuthSession.objects.get(user=admin_user, ended_at__isnull=True)
    assert AuditEvent.objects.filter(action="auth.login", actor_id=admin_user.pk).count() == 1
    cookie = r.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax", cookie.output()
    # Sign out ends that same session, audited like the API's logout.
    assert client.post("/logout").status_code == 302
    session.refresh_from_db()
    assert (session.end_reason, AuditEvent.objects.filter(action="auth.logout").count()) == ("logout", 1)
    assert client.get("/account").status_code == 302


def test_wrong_password_keeps_the_email_and_says_so(admin_user):
    r = sign_in(Client(), admin_user.email, "not-the-password")
    page = r.content.decode()
    assert r.status_code == 401 and "Invalid email or password" in page
    assert f'value="{admin_user.email}"' in page and "not-the-password" not in page
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 1


def test_next_never_leads_off_the_site(admin_user):
    for target in ("https://evil.example.com/", "//evil.example.com/", "/\\evil.example.com"):
        r = sign_in(Client(), admin_user.email, next_path=target)
        assert r["Location"] == "/", (target, r["Location"])


def test_a_session_ended_elsewhere_signs_the_browser_out(admin_user):
    client = Client()
    sign_in(client, admin_user.email)
    services.sessions_end_all(user=admin_user, reason="deactivated")
    r = client.get("/account")
    assert r.status_code == 302 and r["Location"].startswith("/login")


def test_a_role_change_applies_at_the_next_request(member_user):
    client = Client()
    sign_in(client, member_user.email)
    assert "(member)" in client.get("/account").content.decode()
    member_user.role = Role.VIEWER
    member_user.save(update_fields=["role"])
    assert "(viewer)" in client.get("/account").content.decode()


def test_register_creates_the_organization_and_signs_in(db):
    client = Client()
    bad = client.post(
        "/register", {"organization_name": "Acme", "name": "Ada", "email": "not-an-email", "password": "x"}
    )
    page = bad.content.decode()
    assert bad.status_code == 400 and 'id="f-email-error"' in page
    assert 'value="Acme"' in page, "what was typed stays"
    weak = client.post(
        "/register", {"organization_name": "Acme", "name": "Ada", "email": "ada@acme.test", "password": "12345678"}
    )
    assert weak.status_code == 400 and 'id="f-password-error"' in weak.content.decode()
    r = client.post(
        "/register", {"organization_name": "Acme", "name": "Ada", "email": "ada@acme.test", "password": PASSWORD}
    )
    assert (r.status_code, r["Location"]) == (302, "/")
    assert "Acme" in client.get("/account").content.decode()
    again = Client().post(
        "/register", {"organization_name": "Other", "name": "Ada", "email": "ada@acme.test", "password": PASSWORD}
    )
    assert again.status_code == 409 and "already registered" in again.content.decode()


def test_forgot_and_reset_password_from_the_email_link(admin_user):
    client = Client()
    r = client.post("/forgot-password", {"email": admin_user.email})
    unknown = client.post("/forgot-password", {"email": "nobody@example.com"})
    said = "If an account exists for this email, a reset link has been sent."
    assert said in r.content.decode() and said in unknown.content.decode()
    mailer.drain()
    (message,) = mail.outbox
    link = re.search(r"https?://\S+/reset-password\?token=\S+", message.body).group(0)
    path = link[link.index("/reset-password") :]
    page = client.get(path).content.decode()
    assert "Choose a new password" in page
    token = path.split("token=")[1]
    weak = client.post("/reset-password", {"token": token, "new_password": "123"})
    assert weak.status_code == 400 and 'id="f-new_password-error"' in weak.content.decode()
    done = client.post("/reset-password", {"token": token, "new_password": "A-brand-new-passw0rd"})
    assert (done.status_code, done["Location"]) == (302, "/login")
    assert sign_in(Client(), admin_user.email, "A-brand-new-passw0rd").status_code == 302
    used = client.post("/reset-password", {"token": token, "new_password": "Another-passw0rd-1"})
    assert used.status_code == 400 and "invalid, expired or already used" in used.content.decode()


def test_an_invitation_is_accepted_on_the_reset_page(admin_user):
    services.member_invite(
        organization=admin_user.organization,
        actor=admin_user,
        email="new@example.com",
        name="New",
        role=Role.MEMBER,
        ip_address=None,
    )
    mailer.drain()
    link = re.search(r"/reset-password\?token=\S+", mail.outbox[-1].body).group(0)
    client = Client()
    assert "Accept your invitation" in client.get(link).content.decode()
    token = link.split("token=")[1]
    r = client.post("/reset-password", {"token": token, "new_password": "Joining-passw0rd-9"})
    assert r.status_code == 302
    assert sign_in(Client(), "new@example.com", "Joining-passw0rd-9").status_code == 302


def test_changing_the_password_ends_every_other_session_but_this_one(admin_user, admin_client):
    browser = Client()
    sign_in(browser, admin_user.email)
    wrong = browser.post(
        "/account", {"action": "password", "current_password": "nope", "new_password": "Fresh-passw0rd-1"}
    )
    assert wrong.status_code == 400 and "The current password is not correct" in wrong.content.decode()
    assert admin_client.get("/api/v1/auth/me").status_code == 200
    r = browser.post(
        "/account", {"action": "password", "current_password": PASSWORD, "new_password": "Fresh-passw0rd-1"}
    )
    assert r.status_code == 302
    assert_error(admin_client.get("/api/v1/auth/me"), 401, "not_authenticated")
    assert "Every other session is signed out" in browser.get("/account").content.decode()


def test_sign_out_everywhere_ends_the_api_sessions_too(admin_user, admin_client):
    browser = Client()
    sign_in(browser, admin_user.email)
    r = browser.post("/account", {"action": "everywhere"})
    assert (r.status_code, r["Location"]) == (302, "/login")
    assert_error(admin_client.get("/api/v1/auth/me"), 401, "not_authenticated")
    assert browser.get("/account").status_code == 302


def test_profile_name_is_validated_beside_the_field(admin_user):
    browser = Client()
    sign_in(browser, admin_user.email)
    r = browser.post("/account", {"action": "profile", "name": "x" * 151})
    assert r.status_code == 400 and 'id="f-name-error"' in r.content.decode()
    assert browser.post("/account", {"action": "profile", "name": "Grace"}).status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.name == "Grace"


def test_forms_need_their_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    r = client.post("/login", {"email": admin_user.email, "password": PASSWORD})
    assert r.status_code == 403 and "text/html" in r["Content-Type"] and "expired" in r.content.decode()
    assert not AuthSession.objects.exists()


def test_sign_in_is_throttled_like_the_api(admin_user):
    client = Client()
    answers = [sign_in(client, admin_user.email, "wrong").status_code for _ in range(11)]
    assert answers[:10] == [401] * 10 and answers[10] == 429, answers
    assert "Too many attempts" in sign_in(client, admin_user.email).content.decode()


def test_unknown_paths_are_html_for_browsers_and_json_for_the_api(db):
    page = Client().get("/no/such/page", HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
    assert 'href="/"' in page.content.decode()
    assert_error(Client().get("/no/such/page"), 404, "not_found")
    assert_error(Client().get("/api/v1/nope", HTTP_ACCEPT="application/json"), 404, "not_found")


def test_pages_send_a_strict_content_security_policy(db):
    r = Client().get("/login")
    assert r["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "unsafe-eval" not in CONTENT_SECURITY_POLICY
    html = r.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "no inline script"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "no inline event handler"


def test_an_operator_account_is_pointed_to_the_admin(db):
    UserFactory(organization=None, email="op@example.com", is_staff=True)
    r = sign_in(Client(), "op@example.com")
    assert r.status_code == 401 and "/admin/" in r.content.decode()
