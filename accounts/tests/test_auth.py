import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import AuditEvent, AuthSession, PasswordToken, Role, User, UserStatus
from accounts.tests.factories import PASSWORD, OperatorFactory, UserFactory
from logfleet import mailer
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"
FORGOT = "/api/v1/auth/forgot-password"
RESET = "/api/v1/auth/reset-password"
CHANGE = "/api/v1/auth/change-password"

NEW_PASSWORD = "Another-sturdy-passw0rd"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def register(client, **overrides):
    body = {"organization_name": "Acme Corp", "email": "Ann@Example.com", "password": PASSWORD, "name": "Ann"}
    return client.post(REGISTER, {**body, **overrides}, format="json")


def login(email, password=PASSWORD):
    return APIClient().post(LOGIN, {"email": email, "password": password}, format="json")


def reset_token_from_mail(message) -> str:
    match = re.search(r"http://localhost:8080/reset-password\?token=(\S+)", message.body)
    assert match, message.body
    return match.group(1)


def test_register_creates_organization_with_an_admin(api_client):
    r = register(api_client)
    assert r.status_code == 201, r.json()
    body = r.json()
    assert set(body) == {"token", "expires_in", "refresh_token", "user", "organization"}
    assert body["expires_in"] == 86400
    assert body["user"]["email"] == "ann@example.com" and body["user"]["role"] == "admin"
    assert set(body["user"]) == {"id", "email", "name", "role"}
    assert body["organization"]["name"] == "Acme Corp" and body["organization"]["slug"] == "acme-corp"
    me = bearer(body["token"]).get(ME)
    assert me.status_code == 200, me.json()
    assert me.json()["organization"]["id"] == body["organization"]["id"]


def test_register_ignores_fields_a_client_may_not_write(api_client):
    r = register(api_client, role="viewer", organization="x", id="00000000-0000-4000-8000-000000000000")
    assert r.status_code == 201, r.json()
    assert r.json()["user"]["role"] == "admin"
    assert r.json()["user"]["id"] != "00000000-0000-4000-8000-000000000000"


def test_register_email_is_unique_case_insensitively(api_client):
    assert register(api_client).status_code == 201
    assert_error(register(api_client, email="ANN@example.COM", organization_name="Other"), 409, "conflict")
    assert User.objects.count() == 1


def test_register_names_password_validation_failures(api_client):
    body = assert_error(register(api_client, password="123"), 400, "validation_error")
    assert "password" in body["details"] and "short" in body["details"]["password"]
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"email": "not-an-email"}, "email"),
        ({"organization_name": ""}, "organization_name"),
        ({"name": "x" * 151}, "name"),
        ({"password": None}, "password"),
    ],
)
def test_register_rejects_bad_fields(api_client, overrides, field):
    body = assert_error(register(api_client, **overrides), 400, "validation_error")
    assert field in body["details"]


def test_register_requires_every_field(api_client):
    body = assert_error(api_client.post(REGISTER, {}, format="json"), 400, "validation_error")
    assert set(body["details"]) == {"organization_name", "email", "password", "name"}


def test_login_returns_a_session(admin_user):
    r = login(admin_user.email.upper())
    assert r.status_code == 200, r.json()
    assert r.json()["user"]["id"] == str(admin_user.pk)
    assert bearer(r.json()["token"]).get(ME).status_code == 200
    admin_user.refresh_from_db()
    assert admin_user.last_login is not None


def test_wrong_email_and_wrong_password_get_the_same_answer(admin_user):
    wrong_password = assert_error(login(admin_user.email, "nope-nope-nope"), 401, "authentication_failed")
    unknown_email = assert_error(login("nobody@example.com"), 401, "authentication_failed")
    assert wrong_password == unknown_email
    assert AuditEvent.objects.filter(action="auth.login_failed", actor_id=admin_user.pk).count() == 1


@pytest.mark.parametrize("status", [UserStatus.DEACTIVATED, UserStatus.INVITED])
def test_inactive_users_cannot_log_in(org, status):
    user = UserFactory(organization=org, status=status)
    assert assert_error(login(user.email), 401, "authentication_failed") == assert_error(
        login("nobody@example.com"), 401
    )


def test_refresh_rotates_and_rejects_a_used_refresh_token(admin_user):
    first = login(admin_user.email).json()
    r = APIClient().post(REFRESH, {"refresh_token": first["refresh_token"]}, format="json")
    assert r.status_code == 200, r.json()
    second = r.json()
    assert set(second) == {"token", "expires_in", "refresh_token"}
    assert bearer(second["token"]).get(ME).status_code == 200
    # The access token it replaces keeps working, and the new refresh token rotates again.
    assert bearer(first["token"]).get(ME).status_code == 200
    r = APIClient().post(REFRESH, {"refresh_token": second["refresh_token"]}, format="json")
    assert r.status_code == 200, r.json()
    third = r.json()
    assert bearer(third["token"]).get(ME).status_code == 200


def test_reusing_a_refresh_token_ends_the_session_as_stolen(admin_user):
    first = login(admin_user.email).json()
    second = APIClient().post(REFRESH, {"refresh_token": first["refresh_token"]}, format="json").json()
    # Someone replays the old refresh token: refused, and the session is over for everyone.
    assert_error(APIClient().post(REFRESH, {"refresh_token": first["refresh_token"]}, format="json"), 401)
    assert_error(bearer(second["token"]).get(ME), 401, "not_authenticated")
    assert_error(APIClient().post(REFRESH, {"refresh_token": second["refresh_token"]}, format="json"), 401)
    assert AuthSession.objects.get(user=admin_user).end_reason == "refresh_token_reused"


def test_refresh_rejects_garbage_and_access_tokens(admin_user):
    session = login(admin_user.email).json()
    assert_error(APIClient().post(REFRESH, {"refresh_token": "garbage"}, format="json"), 401, "not_authenticated")
    assert_error(APIClient().post(REFRESH, {"refresh_token": session["token"]}, format="json"), 401)
    assert_error(APIClient().post(REFRESH, {}, format="json"), 400, "validation_error")


def test_logout_ends_access_and_refresh_tokens_of_that_session_only(admin_user):
    one = login(admin_user.email).json()
    other = login(admin_user.email).json()
    assert bearer(one["token"]).post(LOGOUT).status_code == 204
    assert_error(bearer(one["token"]).get(ME), 401, "not_authenticated")
    assert_error(APIClient().post(REFRESH, {"refresh_token": one["refresh_token"]}, format="json"), 401)
    assert bearer(other["token"]).get(ME).status_code == 200
    assert AuditEvent.objects.filter(action="auth.logout").count() == 1


def test_logout_needs_a_token(api_client):
    assert_error(api_client.post(LOGOUT), 401, "not_authenticated")


def test_an_expired_access_token_is_rejected(admin_user):
    session = login(admin_user.email).json()
    token = AccessToken(session["token"])
    token.set_exp(from_time=timezone.now() - timedelta(days=2), lifetime=timedelta(seconds=1))
    assert_error(bearer(str(token)).get(ME), 401, "not_authenticated")


def test_a_token_signed_with_another_key_is_rejected(admin_user):
    session = login(admin_user.email).json()
    header, payload, _sig = session["token"].split(".")
    assert_error(bearer(f"{header}.{payload}.AAAA").get(ME), 401, "not_authenticated")


def test_access_token_lifetime_follows_the_setting(settings, admin_user):
    settings.JWT_ACCESS_TTL = 600
    assert login(admin_user.email).json()["expires_in"] == 600


def outbox():
    """The messages sent so far, once the mail thread has sent what it was handed."""
    mailer.drain()
    return mail.outbox


class BlockingBackend(locmem.EmailBackend):
    """Holds every message until `release` is set: shows whether a request waits for its email."""

    release = threading.Event()

    def send_messages(self, messages):
        assert self.release.wait(10)
        return super().send_messages(messages)


def test_forgot_password_does_not_wait_for_the_email(admin_user, settings):
    # A mail server that does not answer yet: the request must not wait for it.
    settings.EMAIL_BACKEND = "accounts.tests.test_auth.BlockingBackend"
    BlockingBackend.release.clear()
    try:
        assert APIClient().post(FORGOT, {"email": admin_user.email}, format="json").status_code == 202
        assert mail.outbox == []  # answered while the message is still on its way
    finally:
        BlockingBackend.release.set()
    assert [message.to for message in outbox()] == [[admin_user.email]]


def test_forgot_password_answers_the_same_for_known_and_unknown_emails(admin_user):
    known = APIClient().post(FORGOT, {"email": admin_user.email}, format="json")
    unknown = APIClient().post(FORGOT, {"email": "nobody@example.com"}, format="json")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(outbox()) == 1 and outbox()[0].to == [admin_user.email]


def test_forgot_password_sends_nothing_to_deactivated_users(org):
    user = UserFactory(organization=org, status=UserStatus.DEACTIVATED)
    assert APIClient().post(FORGOT, {"email": user.email}, format="json").status_code == 202
    assert outbox() == []


def test_reset_password_sets_the_password_once_and_ends_every_session(admin_user):
    old = login(admin_user.email).json()
    APIClient().post(FORGOT, {"email": admin_user.email}, format="json")
    token = reset_token_from_mail(outbox()[0])
    r = APIClient().post(RESET, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert r.status_code == 200, r.json()
    assert "message" in r.json()
    assert_error(bearer(old["token"]).get(ME), 401)
    assert_error(APIClient().post(REFRESH, {"refresh_token": old["refresh_token"]}, format="json"), 401)
    assert login(admin_user.email, NEW_PASSWORD).status_code == 200
    assert_error(login(admin_user.email), 401)
    again = APIClient().post(RESET, {"token": token, "new_password": "Yet-another-passw0rd"}, format="json")
    assert "token" in assert_error(again, 400, "validation_error")["details"]
    assert AuditEvent.objects.filter(action="auth.password_reset", actor_id=admin_user.pk).exists()


def test_reset_password_token_expires(settings, admin_user):
    APIClient().post(FORGOT, {"email": admin_user.email}, format="json")
    token = reset_token_from_mail(outbox()[0])
    PasswordToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    r = APIClient().post(RESET, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert_error(r, 400, "validation_error")
    assert login(admin_user.email).status_code == 200


def test_reset_password_validates_the_new_password(admin_user):
    APIClient().post(FORGOT, {"email": admin_user.email}, format="json")
    token = reset_token_from_mail(outbox()[0])
    r = APIClient().post(RESET, {"token": token, "new_password": "short"}, format="json")
    assert "new_password" in assert_error(r, 400)["details"]
    # The token was not spent on the failed attempt.
    assert APIClient().post(RESET, {"token": token, "new_password": NEW_PASSWORD}, format="json").status_code == 200


def test_reset_password_rejects_an_unknown_token(db):
    r = APIClient().post(RESET, {"token": "made-up", "new_password": NEW_PASSWORD}, format="json")
    assert_error(r, 400, "validation_error")


def test_change_password_starts_a_fresh_session_and_ends_the_others(admin_user):
    first = login(admin_user.email).json()
    second = login(admin_user.email).json()
    r = bearer(first["token"]).post(CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json")
    assert r.status_code == 200, r.json()
    assert set(r.json()) == {"token", "expires_in", "refresh_token"}
    for old in (first, second):
        assert_error(bearer(old["token"]).get(ME), 401)
    assert bearer(r.json()["token"]).get(ME).status_code == 200
    assert login(admin_user.email, NEW_PASSWORD).status_code == 200
    assert AuditEvent.objects.filter(action="auth.password_changed").count() == 1


def test_change_password_with_a_wrong_current_password(admin_client):
    r = admin_client.post(CHANGE, {"current_password": "wrong", "new_password": NEW_PASSWORD}, format="json")
    assert "current_password" in assert_error(r, 400, "validation_error")["details"]
    assert admin_client.get(ME).status_code == 200


def test_change_password_validates_the_new_password(admin_client):
    r = admin_client.post(CHANGE, {"current_password": PASSWORD, "new_password": "12345678"}, format="json")
    assert "new_password" in assert_error(r, 400, "validation_error")["details"]


def test_me_shows_and_renames_the_user_but_not_email_or_role(member_client, member_user):
    r = member_client.get(ME)
    assert r.status_code == 200, r.json()
    assert r.json()["user"] == {
        "id": str(member_user.pk),
        "email": member_user.email,
        "name": member_user.name,
        "role": "member",
    }
    r = member_client.patch(ME, {"name": "New Name", "email": "evil@example.com", "role": "admin"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["user"]["name"] == "New Name"
    member_user.refresh_from_db()
    assert (member_user.name, member_user.email, member_user.role) == ("New Name", member_user.email, Role.MEMBER)
    assert "evil" not in member_user.email
    assert "name" in assert_error(member_client.patch(ME, {"name": ""}, format="json"), 400)["details"]


def test_production_hashes_passwords_with_argon2():
    import logfleet.settings as production

    assert production.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_a_short_reset_ttl_is_said_in_seconds_and_holds(admin_user, settings, clock):
    settings.PASSWORD_RESET_TTL = 5  # API.md section 10: any whole number of seconds from 1
    APIClient().post(FORGOT, {"email": admin_user.email}, format="json")
    message = outbox()[0]
    assert "within 5 seconds" in message.body
    clock.advance(6)
    r = APIClient().post(RESET, {"token": reset_token_from_mail(message), "new_password": NEW_PASSWORD}, format="json")
    assert_error(r, 400, "validation_error")


def test_an_operator_account_is_told_it_is_for_the_admin(db):
    OperatorFactory(email="ops@example.com", password="Operator-passw0rd")
    r = APIClient().post(LOGIN, {"email": "ops@example.com", "password": "Operator-passw0rd"}, format="json")
    assert "operator account" in assert_error(r, 401, "authentication_failed")["message"]
    wrong = APIClient().post(LOGIN, {"email": "ops@example.com", "password": "wrong"}, format="json")
    assert assert_error(wrong, 401)["message"] == "Invalid email or password"
