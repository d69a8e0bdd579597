"""Rate-limit groups (API.md section 1) on django-ratelimit's counters.

One counter per group and key in fixed windows; the counters live in the default cache,
which is Redis when REDIS_URL is set, so the limit holds across server processes (the
counter is created with an atomic ADD and advanced with an atomic INCR).

Besides the groups of API.md, `auth_account` counts the logins (API and admin), forgot-password
and reset-password requests per target account, whoever sends them: one account cannot be
brute-forced from many addresses. It is keyed by the normalized email whether or not an
account has it, so its answers reveal nothing about which accounts exist.

Failure policy when the shared counter store cannot be reached, per group:
- `auth` and `auth_account` (login, registration, password reset, the admin login) fall back to
  a per-process counter with the same limits (local memory): a Redis outage must not open login
  to brute force. With N server processes a client gets at most N times the limit meanwhile.
- every other group lets the request through (fail-open) and logs it: those limits protect
  capacity, and refusing every request because the counter store is down would turn a Redis
  outage into a full outage.
"""

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django_ratelimit.core import get_usage

from logfleet.api.client import client_ip
from logfleet.errors import RateLimited

logger = logging.getLogger("logfleet.ratelimit")

GROUPS = ("auth", "auth_account", "dashboard", "agents", "edge", "streaming")
#: groups counted in this process while the shared store is down (see the module's docstring)
FALLBACK_GROUPS = frozenset({"auth", "auth_account"})
FALLBACK_CACHE = "ratelimit-fallback"

_PERIODS = {"s": 1, "m": 60, "h": 3600}


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


def ip_key(request) -> str:
    """The bucket of an anonymous caller: its client address (logfleet.api.client)."""
    return f"ip:{client_ip(request)}"


def account_key(email: str) -> str:
    """The bucket of a target account: its email as the accounts app looks it up (lower case)."""
    return f"account:{email.strip().lower()}"


def _local_usage(group: str, key: str, rate: str) -> dict:
    """The same fixed-window count in this process's memory (the fallback of FALLBACK_GROUPS)."""
    count, unit = rate.split("/")
    limit, period = int(count), _PERIODS[unit]
    now = int(time.time())
    window_end = now - now % period + period
    counters = caches[FALLBACK_CACHE]
    counter = "rl:" + hashlib.sha256(f"{group}\0{key}\0{window_end}".encode()).hexdigest()
    if counters.add(counter, 1, period + 1):
        used = 1
    else:
        try:
            used = counters.incr(counter)
        except ValueError:  # expired between the two calls: this request opens the next window
            counters.set(counter, 1, period + 1)
            used = 1
    return {"count": used, "limit": limit, "should_limit": used > limit, "time_left": window_end - now}


def consume(request, *, group: str, key: str) -> RateUsage | None:
    """Count one request of `key` in `group`; None when it could not be counted (fail-open)."""
    rate = settings.RATE_LIMITS[group]
    failure: Exception | None = None
    try:
        usage = get_usage(request, group=f"logfleet.{group}", key=lambda _g, _r: key, rate=rate, increment=True)
    except Exception as exc:  # the cache backend's connection errors vary by backend
        usage, failure = None, exc
    if usage is None or usage["time_left"] < 0:  # time_left < 0: django-ratelimit lost the counter
        counted_here = group in FALLBACK_GROUPS
        logger.warning(
            "rate-limit counter store unavailable (group %s): %s",
            group,
            "counting in this process instead" if counted_here else "letting the request through",
            exc_info=failure,
        )
        if not counted_here:
            return None
        usage = _local_usage(group, key, rate)
    now = int(time.time())
    return RateUsage(
        limit=usage["limit"],
        remaining=max(0, usage["limit"] - usage["count"]),
        reset=now + max(usage["time_left"], 1),
        exceeded=usage["should_limit"],
    )


def _tighter(first: RateUsage | None, second: RateUsage | None) -> RateUsage | None:
    """What the response headers describe when two counters apply: the one nearer to refusing."""
    if first is None or second is None:
        return first or second
    if first.exceeded or second.exceeded:
        return first if first.exceeded else second
    return second if second.remaining < first.remaining else first


def enforce(request, *, group: str, key: str) -> RateUsage | None:
    """Count the request, remember the usage for the response headers, raise 429 when over.

    A request may be counted by several counters (per client IP, then per target account); the
    headers describe the one with the fewest requests left, or the one that refused."""
    usage = consume(request, group=group, key=key)
    request.rate_usage = _tighter(getattr(request, "rate_usage", None), usage)
    if usage is not None and usage.exceeded:
        raise RateLimited(usage.retry_after)
    return usage


def enforce_account(request, email: str | None) -> None:
    """The per-account counter of a login, forgot-password or reset-password request (429 when over)."""
    if email:
        enforce(request, group="auth_account", key=account_key(email))
