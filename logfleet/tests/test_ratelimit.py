"""API.md section 1: groups, keys, headers and 429."""

import re
import subprocess
import time

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from conftest import client_for
from logfleet import mailer
from logfleet.testing import assert_error, manage_py

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
FORGOT = "/api/v1/auth/forgot-password"
RESET = "/api/v1/auth/reset-password"


@pytest.fixture
def limits(settings):
    def set_limits(**rates):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, **rates}

    return set_limits


def bad_login(client, **extra):
    return client.post(LOGIN, {"email": "nobody@example.com", "password": "x"}, format="json", **extra)


def test_headers_count_down_and_the_request_over_the_limit_gets_429(limits):
    limits(auth="3/m")
    client = APIClient()
    remaining = []
    for _ in range(3):
        r = bad_login(client)
        assert r.status_code == 401
        assert r["X-RateLimit-Limit"] == "3"
        remaining.append(int(r["X-RateLimit-Remaining"]))
        reset = int(r["X-RateLimit-Reset"])
        assert time.time() < reset <= time.time() + 61
    assert remaining == [2, 1, 0]
    r = bad_login(client)
    assert_error(r, 429, "rate_limited")
    assert r["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(r["Retry-After"]) <= 60


def test_one_counter_per_group_not_per_endpoint(limits):
    limits(auth="2/m")
    client = APIClient()
    assert bad_login(client).status_code == 401
    assert client.post(FORGOT, {"email": "a@example.com"}, format="json").status_code == 202
    assert_error(client.post("/api/v1/auth/refresh", {"refresh_token": "x"}, format="json"), 429)


def test_anonymous_auth_endpoints_are_keyed_by_client_ip(limits):
    limits(auth="1/m")
    assert bad_login(APIClient(), REMOTE_ADDR="10.0.0.1").status_code == 401
    assert_error(bad_login(APIClient(), REMOTE_ADDR="10.0.0.1"), 429)
    assert bad_login(APIClient(), REMOTE_ADDR="10.0.0.2").status_code == 401


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(limits, settings):
    limits(auth="1/m")
    assert bad_login(APIClient(), HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 401
    assert_error(bad_login(APIClient(), HTTP_X_FORWARDED_FOR="2.2.2.2"), 429)

    settings.TRUSTED_PROXY_COUNT = 1
    assert bad_login(APIClient(), HTTP_X_FORWARDED_FOR="9.9.9.9, 3.3.3.3").status_code == 401
    assert_error(bad_login(APIClient(), HTTP_X_FORWARDED_FOR="8.8.8.8, 3.3.3.3"), 429)
    assert bad_login(APIClient(), HTTP_X_FORWARDED_FOR="3.3.3.3, 4.4.4.4").status_code == 401


def test_logged_in_groups_are_keyed_by_user(limits, org):
    limits(dashboard="2/m")
    alice, bob = client_for(UserFactory(organization=org)), client_for(UserFactory(organization=org))
    for _ in range(2):
        assert alice.get("/api/v1/auth/me").status_code == 200
    assert_error(alice.get("/api/v1/organization"), 429, "rate_limited")
    r = bob.get("/api/v1/auth/me")
    assert r.status_code == 200 and r["X-RateLimit-Remaining"] == "1"


def test_logout_and_change_password_count_against_the_user_not_the_ip(limits, org):
    limits(auth="1/m")
    alice, bob = client_for(UserFactory(organization=org)), client_for(UserFactory(organization=org))
    assert alice.post("/api/v1/auth/logout").status_code == 204
    assert bob.post("/api/v1/auth/logout").status_code == 204


def test_unauthenticated_requests_to_user_groups_carry_no_rate_headers(limits):
    r = APIClient().get("/api/v1/auth/me")
    assert_error(r, 401)
    assert "X-RateLimit-Limit" not in r


def test_forbidden_requests_still_carry_the_headers(viewer_client):
    r = viewer_client.get("/api/v1/audit-events")
    assert_error(r, 403, "permission_denied")
    assert r["X-RateLimit-Limit"] == "60"


def test_endpoints_outside_the_groups_are_not_limited(limits):
    limits(auth="1/m", dashboard="1/m")
    for _ in range(3):
        r = APIClient().get("/healthz")
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r


@pytest.fixture
def store_down(monkeypatch):
    """The shared counter store (Redis in production) refuses every call."""

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr("logfleet.api.ratelimit._count_shared", down)


def test_a_counter_store_outage_lets_the_other_groups_through(limits, store_down, org):
    limits(dashboard="1/m")
    client = client_for(UserFactory(organization=org))
    for _ in range(3):
        r = client.get("/api/v1/auth/me")
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r


def test_login_stays_limited_in_each_process_while_the_counter_store_is_down(limits, store_down):
    limits(auth="2/h")
    for _ in range(2):
        r = bad_login(APIClient())
        assert r.status_code == 401 and r["X-RateLimit-Limit"] == "2"
    assert_error(bad_login(APIClient()), 429, "rate_limited")
    assert bad_login(APIClient(), REMOTE_ADDR="10.0.0.9").status_code == 401  # still per client IP


def test_the_per_account_limit_also_holds_while_the_counter_store_is_down(limits, store_down):
    limits(auth_account="1/h")
    assert bad_login(APIClient(), REMOTE_ADDR="10.0.0.1").status_code == 401
    assert_error(bad_login(APIClient(), REMOTE_ADDR="10.0.0.2"), 429, "rate_limited")


# --- per target account: login, forgot-password, reset-password ---------------------------
# Hourly limits in these tests: a few requests cannot straddle a window's end in practice.


def login_as(email, ip, password="wrong-password"):
    return APIClient().post(LOGIN, {"email": email, "password": password}, format="json", REMOTE_ADDR=ip)


def test_login_is_limited_per_account_whatever_the_address(limits, org):
    limits(auth_account="2/h")
    user = UserFactory(organization=org, email="alice@example.com")
    assert login_as("alice@example.com", "10.0.0.1").status_code == 401
    assert login_as("ALICE@example.com ", "10.0.0.2").status_code == 401  # the same account
    refused = login_as("alice@example.com", "10.0.0.3", password="correct-Passw0rd")
    assert_error(refused, 429, "rate_limited")
    assert refused["X-RateLimit-Remaining"] == "0" and int(refused["Retry-After"]) >= 1
    assert login_as("bob@example.com", "10.0.0.3").status_code == 401  # another account, same address
    user.refresh_from_db()
    assert user.last_login is None


def test_the_per_account_limit_answers_alike_whether_or_not_the_account_exists(limits, org, mailoutbox):
    limits(auth_account="2/h")
    UserFactory(organization=org, email="known@example.com")
    answers = {}
    for n, email in enumerate(("known@example.com", "unknown@example.com")):
        seen = []
        for i, path in enumerate([LOGIN, LOGIN, LOGIN, FORGOT]):
            r = APIClient().post(path, {"email": email, "password": "x"}, format="json", REMOTE_ADDR=f"10.1.{n}.{i}")
            body = r.json()
            body.get("details", {}).pop("retry_after", None)  # the window's end differs per bucket
            seen.append((r.status_code, body, r["X-RateLimit-Limit"], r["X-RateLimit-Remaining"]))
        answers[email] = seen
    assert answers["known@example.com"] == answers["unknown@example.com"]
    assert [status for status, *_ in answers["known@example.com"]] == [401, 401, 429, 429]
    mailer.drain()
    assert mailoutbox == []


def test_forgot_password_is_limited_per_account(limits, org, mailoutbox):
    limits(auth_account="2/h")
    UserFactory(organization=org, email="alice@example.com")
    statuses = [
        APIClient().post(FORGOT, {"email": "alice@example.com"}, format="json", REMOTE_ADDR=f"10.2.0.{i}").status_code
        for i in range(4)
    ]
    assert statuses == [202, 202, 429, 429]
    mailer.drain()
    assert len(mailoutbox) == 2


def test_reset_password_is_limited_per_user_of_the_token(limits, org, mailoutbox):
    limits(auth_account="3/h")
    UserFactory(organization=org, email="alice@example.com")
    for i in range(2):  # two links, asked for from two addresses: two of alice's three requests
        APIClient().post(FORGOT, {"email": "alice@example.com"}, format="json", REMOTE_ADDR=f"10.3.0.{i}")
    mailer.drain()
    tokens = [re.search(r"token=(\S+)", message.body).group(1) for message in mailoutbox]

    def reset(token, ip):
        body = {"token": token, "new_password": "short"}  # refused (400): the token stays valid
        return APIClient().post(RESET, body, format="json", REMOTE_ADDR=ip)

    assert_error(reset(tokens[0], "10.3.1.1"), 400, "validation_error")
    assert_error(reset(tokens[1], "10.3.1.2"), 429, "rate_limited")
    assert_error(reset("never-issued", "10.3.1.3"), 400, "validation_error")  # no account: per IP only


# --- the deployment check -------------------------------------------------------------------

# `make lint`'s production-like environment.
LINT_ENV = {
    "SECRET_KEY": "ci-only-" + "x" * 56,
    "PUBLIC_URL": "https://logfleet.example.com",
    "ALLOWED_HOSTS": "logfleet.example.com",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
}


def deploy_check(**env) -> subprocess.CompletedProcess:
    return manage_py("check", "--deploy", "--fail-level", "WARNING", env={**LINT_ENV, **env})


def test_deploy_check_warns_when_several_processes_trust_no_proxy():
    shared = deploy_check(REDIS_URL="redis://127.0.0.1:6379/0")
    assert shared.returncode != 0 and "logfleet.W001" in shared.stderr, shared.stderr
    proxied = deploy_check(REDIS_URL="redis://127.0.0.1:6379/0", TRUSTED_PROXY_COUNT="1")
    assert proxied.returncode == 0, proxied.stderr
    single = deploy_check()  # make lint: no REDIS_URL
    assert single.returncode == 0, single.stderr
