"""The limit holds exactly across two server processes that share Redis (API.md section 1)."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from logfleet.testing import LiveServer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

LIMIT = 7


def post_login(base_url: str) -> int:
    request = urllib.request.Request(
        f"{base_url}/api/v1/auth/login",
        data=json.dumps({"email": "nobody@example.com", "password": "x"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: the shared counter store of several processes")
def test_two_processes_sharing_redis_enforce_one_limit_together():
    # An hourly window: the test cannot straddle a window boundary in practice.
    env = {"LOGFLEET_RATE_AUTH": f"{LIMIT}/h"}
    servers = [LiveServer(env), LiveServer(env)]
    try:
        urls = [servers[i % 2].url for i in range(4 * LIMIT)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(post_login, urls))
    finally:
        for server in servers:
            server.stop()
    assert statuses.count(401) == LIMIT, statuses
    assert statuses.count(429) == 3 * LIMIT, statuses
