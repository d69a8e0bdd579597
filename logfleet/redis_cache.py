"""Django's Redis cache, with its connections shared by the whole process.

Two costs of Django's RedisCache showed up on the edge hot path:
- `caches["default"]` is a new backend object in every request context (Django keeps cache
  handles in a context-local), and each new backend opens its own connection pool: a new TCP
  connection to Redis on every request;
- its client builds a new `redis.Redis` object on every operation.
Here one client per (servers, options) serves the whole process; `redis.Redis` and its
connection pool are thread-safe.

`incr` is also one atomic script instead of EXISTS then INCRBY, and `incr_with_expiry` (the
rate-limit counters, logfleet.api.ratelimit) INCR then EXPIRE of a new counter: one round trip
for every rate-limited request instead of two or three, and no window in which the counter can
expire between the calls.
"""

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_clients: dict[tuple, "SharedRedisCacheClient"] = {}
_lock = threading.Lock()


# INCRBY only an existing key (a missing one must not be created without its expiry).
_INCR_EXISTING = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end"
# INCR a counter, giving it its expiry when this created it.
_INCR_WITH_EXPIRY = (
    "local value = redis.call('INCR', KEYS[1]) "
    "if value == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return value"
)


class SharedRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._redis_clients = {}
        self._scripts = {}

    def _script(self, client, source: str):
        script = self._scripts.get((id(client), source))
        if script is None:
            script = self._scripts[id(client), source] = client.register_script(source)
        return script

    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        value = self._script(client, _INCR_EXISTING)(keys=[key], args=[delta])
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def incr_with_expiry(self, key, timeout: int) -> int:
        client = self.get_client(key, write=True)
        return self._script(client, _INCR_WITH_EXPIRY)(keys=[key], args=[int(timeout)])

    def incr_many_with_expiry(self, keys, timeout: int) -> list[int]:
        client = self.get_client(write=True)
        script = self._script(client, _INCR_WITH_EXPIRY)
        pipeline = client.pipeline(transaction=False)
        for key in keys:
            script(keys=[key], args=[int(timeout)], client=pipeline)
        return pipeline.execute()

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._redis_clients.get(index)
        if client is None:
            with _lock:
                client = self._redis_clients.get(index)
                if client is None:
                    client = self._client(connection_pool=self._get_connection_pool(write))
                    self._redis_clients[index] = client
        return client


class SharedRedisCache(RedisCache):
    @cached_property
    def _cache(self):
        identity = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _clients.get(identity)
            if client is None:
                client = _clients[identity] = SharedRedisCacheClient(self._servers, **self._options)
        return client

    def incr_with_expiry(self, key, timeout: int) -> int:
        """Add one to the counter `key` (created with `timeout` seconds to live); its new value."""
        return self._cache.incr_with_expiry(self.make_and_validate_key(key), timeout)

    def incr_many_with_expiry(self, keys, timeout: int) -> list[int]:
        """incr_with_expiry of each of `keys`, pipelined (one round trip); their new values."""
        return self._cache.incr_many_with_expiry([self.make_and_validate_key(key) for key in keys], timeout)
