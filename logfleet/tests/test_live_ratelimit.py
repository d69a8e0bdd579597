"""The limit holds exactly across two server processes that share Redis (API.md section 1)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from bench.live import LiveServer, http_json

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

LIMIT = 7


def post_login(base_url: str) -> int:
    return http_json(f"{base_url}/api/v1/auth/login", {"email": "nobody@example.com", "password": "x"})[0]


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
