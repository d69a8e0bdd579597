"""Rate-limit groups (API.md section 1): one counter per group and key in fixed windows.

The counters live in the default cache, which is Redis when REDIS_URL is set, so the limit holds
across server processes. On Redis a request costs one round trip: INCR, and EXPIRE when that
created the counter, in one script (logfleet.redis_cache); other caches ADD, else INCR.
Windows are aligned on the period (a minute window ends at a whole minute), so a window's end
is known without asking the store.

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


def _window(group: str, key: str, period: int) -> tuple[str, int]:
    """The counter of `key` in `group` for the current window, and the window's end (Unix time)."""
    now = int(time.time())
    window_end = now - now % period + period
    digest = hashlib.sha256(f"{group}\0{key}".encode()).hexdigest()[:32]
    return f"rl:{group}:{digest}:{window_end}", window_end


def count_in(counters, counter: str, ttl: int) -> int:
    """Add one to `counter` (created with a `ttl` in seconds) and return its value."""
    incr_with_expiry = getattr(counters, "incr_with_expiry", None)
    if incr_with_expiry is not None:  # Redis: one round trip
        return incr_with_expiry(counter, ttl)
    if counters.add(counter, 1, ttl):
        return 1
    try:
        return counters.incr(counter)
    except ValueError:  # expired between the two calls: this request opens the next window
        counters.set(counter, 1, ttl)
        return 1


def _count_shared(counter: str, ttl: int) -> int:
    return count_in(caches["default"], counter, ttl)


def _usage(limit: int, used: int, window_end: int) -> RateUsage:
    return RateUsage(limit=limit, remaining=max(0, limit - used), reset=window_end, exceeded=used > limit)


def consume_key(*, group: str, key: str) -> RateUsage | None:
    """Count one request (or socket frame) of `key` in `group`; None when it could not be counted
    (fail-open)."""
    count, unit = settings.RATE_LIMITS[group].split("/")
    limit, period = int(count), _PERIODS[unit]
    counter, window_end = _window(group, key, period)
    try:
        used = _count_shared(counter, period + 1)
    except Exception as exc:  # the cache backend's connection errors vary by backend
        counted_here = group in FALLBACK_GROUPS
        logger.warning(
            "rate-limit counter store unavailable (group %s): %s",
            group,
            "counting in this process instead" if counted_here else "letting the request through",
            exc_info=exc,
        )
        if not counted_here:
            return None
        used = count_in(caches[FALLBACK_CACHE], counter, period + 1)
    return _usage(limit, used, window_end)


def consume_keys(*, group: str, keys: list[str]) -> list[RateUsage | None]:
    """Count one request (or frame) of each of `keys` in `group`, in one round trip on Redis (the
    heartbeats that arrive together on a process's agent sockets); as consume_key for each."""
    incr_many = getattr(caches["default"], "incr_many_with_expiry", None)
    if incr_many is None or not keys:
        return [consume_key(group=group, key=key) for key in keys]
    count, unit = settings.RATE_LIMITS[group].split("/")
    limit, period = int(count), _PERIODS[unit]
    windows = [_window(group, key, period) for key in keys]
    try:
        used = incr_many([counter for counter, _end in windows], period + 1)
    except Exception:
        return [consume_key(group=group, key=key) for key in keys]  # each says what it can
    return [_usage(limit, value, end) for value, (_counter, end) in zip(used, windows, strict=True)]


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
    usage = consume_key(group=group, key=key)
    request.rate_usage = _tighter(getattr(request, "rate_usage", None), usage)
    if usage is not None and usage.exceeded:
        raise RateLimited(usage.retry_after)
    return usage


def enforce_account(request, email: str | None) -> None:
    """The per-account counter of a login, forgot-password or reset-password request (429 when over)."""
    if email:
        enforce(request, group="auth_account", key=account_key(email))
