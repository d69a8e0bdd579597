"""Records several server processes read from the shared cache (Redis in production).

Readers go through `read_through`: the cache, else the database, and they only ever *add* to
the cache. Writers call `refresh_after_commit`: the record is dropped at once and the committed
state is written after the commit, so a reader that raced the change cannot put a stale record
back. The cache is an accelerator only: when it is down, everything reads the database.
"""

import contextvars
import logging
from collections.abc import Callable
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger("logfleet.cache")

_prefetched: contextvars.ContextVar[dict | None] = contextvars.ContextVar("shared_cache_prefetched", default=None)
_ABSENT = object()  # prefetched, and not in the cache: read_through loads it without asking again


@contextmanager
def prefetched(*keys: str):
    """Read `keys` in one round trip; `read_through` of one of them inside the block uses it, and
    any key read through inside the block is read once (a write drops it from the block).

    For a hot path that reads several records of different owners (the heartbeat: the agent's
    identity and its stream instructions)."""
    try:
        found = cache.get_many(keys)
    except Exception:
        logger.warning("shared cache unavailable; reading %s from the database", keys, exc_info=True)
        found = {}
    token = _prefetched.set({key: found.get(key, _ABSENT) for key in keys})
    try:
        yield
    finally:
        _prefetched.reset(token)


def read_through(
    key: str, load: Callable[[], object], ttl: int | Callable[[object], int], *, written_by_commands: bool = False
):
    """The cached record, else `load()` (and cache it for `ttl` seconds, or `ttl(record)`).

    `written_by_commands`: the record also changes through `manage.py` (key revocation and
    rotation), another process than the server. Without Redis each process has a cache of its own
    that such a change cannot reach, so these records are read from the database every time.
    """
    if written_by_commands and not settings.REDIS_URL:
        return load()
    memo = _prefetched.get()
    value = memo.get(key) if memo is not None else None
    if value is not None and value is not _ABSENT:
        return value
    if value is None:
        try:
            value = cache.get(key)
        except Exception:
            logger.warning("shared cache unavailable; reading %s from the database", key, exc_info=True)
            value = None
    if value is None or value is _ABSENT:
        value = load()
        try:
            cache.add(key, value, ttl(value) if callable(ttl) else ttl)
        except Exception:
            logger.debug("could not cache %s", key, exc_info=True)
    if memo is not None:  # a second read in the same prefetched block costs no round trip
        memo[key] = value
    return value


def refresh_after_commit(key: str, load: Callable[[], object] | None, ttl: int | Callable[[object], int]) -> None:
    """Drop `key` now; after the commit write `load()` into it for `ttl` seconds or `ttl(record)` (or
    drop it again without `load`)."""
    memo = _prefetched.get()
    if memo is not None:
        memo.pop(key, None)
    try:
        cache.delete(key)
    except Exception:
        logger.warning("could not drop %s from the shared cache", key, exc_info=True)

    def publish():
        try:
            if load is None:
                cache.delete(key)
            else:
                value = load()
                cache.set(key, value, ttl(value) if callable(ttl) else ttl)
        except Exception:
            logger.warning("could not refresh %s in the shared cache", key, exc_info=True)

    transaction.on_commit(publish)
