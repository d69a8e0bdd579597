"""Rate-limit groups (API.md section 1) on django-ratelimit's counters.

One counter per group and key in fixed windows; the counters live in the default cache,
which is Redis when REDIS_URL is set, so the limit holds across server processes (the
counter is created with an atomic ADD and advanced with an atomic INCR).

Failure policy: when the cache cannot be reached the request is let through (fail-open)
and the failure is logged. Limits protect capacity; refusing every request because the
counter store is down would turn a Redis outage into a full outage.
"""

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django_ratelimit.core import get_usage

from logfleet.api.exceptions import RateLimited

logger = logging.getLogger("logfleet.ratelimit")

GROUPS = ("auth", "dashboard", "agents", "edge", "streaming")


@dataclass(frozen=True)
class RateUsage:
    limit: int
    remaining: int
    reset: int  # Unix time when the window ends
    exceeded: bool

    @property
    def retry_after(self) -> int:
        return max(1, self.reset - int(time.time()))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


def consume(request, *, group: str, key: str) -> RateUsage | None:
    """Count one request of `key` in `group`; None when the counter store is unavailable."""
    rate = settings.RATE_LIMITS[group]
    try:
        usage = get_usage(request, group=f"logfleet.{group}", key=lambda _g, _r: key, rate=rate, increment=True)
    except Exception:  # the cache backend's connection errors vary by backend
        logger.warning("rate-limit counter store unavailable; letting the request through", exc_info=True)
        return None
    if usage is None or usage["time_left"] < 0:
        return None
    now = int(time.time())
    return RateUsage(
        limit=usage["limit"],
        remaining=max(0, usage["limit"] - usage["count"]),
        reset=now + max(usage["time_left"], 1),
        exceeded=usage["should_limit"],
    )


def enforce(request, *, group: str, key: str) -> RateUsage | None:
    """Count the request, remember the usage for the response headers, raise 429 when over."""
    usage = consume(request, group=group, key=key)
    request.rate_usage = usage
    if usage is not None and usage.exceeded:
        raise RateLimited(usage.retry_after)
    return usage
