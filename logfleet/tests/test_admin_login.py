"""The admin's login (POST /admin/login/) is limited like the API's: per client IP and per account."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db

ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def limits(settings):
    # Low limits, so that a test reaches them in a few requests (hourly: a test cannot straddle
    # the end of a window in practice).
    def set_limits(**rates):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, **rates}

    return set_limits


@pytest.fixture
def operator(db):
    return OperatorFactory(email="ops@example.com", password="Operator-passw0rd")


def admin_login(username="ops@example.com", password="wrong", ip="10.0.0.1"):
    return Client().post(ADMIN_LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_admin_login_over_the_per_ip_limit_is_answered_429_in_html(limits, operator):
    limits(auth="2/h")
    for username in ("ops@example.com", "other@example.com"):
        r = admin_login(username)
        assert r.status_code == 200 and r["X-RateLimit-Limit"] == "2"
    refused = admin_login("ops@example.com", "Operator-passw0rd")
    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("text/html")
    assert int(refused["Retry-After"]) >= 1 and refused["X-RateLimit-Remaining"] == "0"
    page = refused.content.decode()
    assert "Too many login attempts" in page and "<form" in page
    assert "_auth_user_id" not in refused.client.session  # the right password did not log in


def test_admin_login_is_limited_per_account_whatever_the_address(limits, operator):
    limits(auth_account="2/h")
    assert admin_login(ip="10.0.0.1").status_code == 200
    assert admin_login(username="OPS@example.com", ip="10.0.0.2").status_code == 200
    assert admin_login(password="Operator-passw0rd", ip="10.0.0.3").status_code == 429
    assert admin_login(username="someone@example.com", ip="10.0.0.3").status_code == 200


def test_admin_and_api_logins_share_their_counters(limits, operator):
    limits(auth_account="2/h")
    api = APIClient().post("/api/v1/auth/login", {"email": "ops@example.com", "password": "x"}, format="json")
    assert api.status_code == 401
    assert admin_login(ip="10.0.0.2").status_code == 200
    assert admin_login(ip="10.0.0.3").status_code == 429


def test_showing_the_admin_login_form_counts_nothing(limits, operator):
    limits(auth="1/h")
    for _ in range(3):
        r = Client().get(ADMIN_LOGIN, REMOTE_ADDR="10.0.0.1")
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r
    r = admin_login(password="Operator-passw0rd")
    assert r.status_code == 302 and r["X-RateLimit-Remaining"] == "0"
