"""A revoked key fails on the very next request on every server process (API.md section 4)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from accounts.tests.factories import UserFactory
from apikeys.tests.factories import make_key
from bench.live import LiveServer, database_url_of_test_db, http_json
from conftest import client_for

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


@pytest.mark.parametrize("command", [["revoke_api_key"], ["rotate_api_key", "--grace-seconds", "0"]])
def test_a_key_ended_by_a_command_fails_at_once_on_a_server_without_redis(org, command):
    """The embedded default: one server process with its own local-memory cache, and `manage.py`
    run beside it (another process, which cannot reach that cache)."""
    key, raw = make_key(org, permissions=["edge:register"])
    server = LiveServer(redis=False)
    try:
        register = {"X-API-Key": raw}
        assert call(f"{server.url}/api/v1/edge/register", body={"name": "a"}, headers=register) == 201
        assert call(f"{server.url}/api/v1/edge/register", body={"name": "a"}, headers=register) == 200
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env.update(DATABASE_URL=database_url_of_test_db(), SECRET_KEY=settings.SECRET_KEY)
        result = subprocess.run(
            [sys.executable, "manage.py", *command, str(key.pk)],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert call(f"{server.url}/api/v1/edge/register", body={"name": "a"}, headers=register) == 401
    finally:
        server.stop()
