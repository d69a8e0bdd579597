"""A revoked key fails on the very next request on every server process (API.md section 4)."""

import pytest
from django.conf import settings

from accounts.tests.factories import UserFactory
from apikeys.tests.factories import make_key
from conftest import client_for
from logfleet.testing import LiveServer, http_json

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def call(url: str, method: str = "POST", body: dict | None = None, headers: dict | None = None) -> int:
    return http_json(url, body if method == "POST" else None, headers, method)[0]


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: the cache several processes share")
def test_a_key_revoked_through_one_process_fails_at_once_on_the_other(org):
    admin = UserFactory(organization=org)
    token = client_for(admin).tokens.token
    key, raw = make_key(org, permissions=["edge:register"])
    one, two = LiveServer(), LiveServer()
    try:
        register = {"X-API-Key": raw}
        assert call(f"{one.url}/api/v1/edge/register", body={"name": "a"}, headers=register) == 201
        assert call(f"{two.url}/api/v1/edge/register", body={"name": "a"}, headers=register) == 200
        revoke = call(
            f"{two.url}/api/v1/api-keys/{key.pk}", method="DELETE", headers={"Authorization": f"Bearer {token}"}
        )
        assert revoke == 204
        assert call(f"{one.url}/api/v1/edge/register", body={"name": "a"}, headers=register) == 401
        assert call(f"{two.url}/api/v1/edge/register", body={"name": "a"}, headers=register) == 401
    finally:
        one.stop()
        two.stop()
