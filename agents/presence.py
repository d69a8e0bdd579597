"""Which agents have their socket open, on any server process: `connected` in the agent representation.

Each process counts its open agent sockets per agent and keeps one record per connected agent in the
shared cache (`agent-presence:<id>`, holding the process's token) that lives AGENT_PRESENCE_SECONDS.
One task per process refreshes all of its records every third of that, a few pipelined writes for
the whole process rather than a write per socket or per frame. When an agent's last socket on a
process closes, the process drops the record if it is still its own (a socket of the same agent on
another process keeps its own record fresh). A process that dies writes nothing more: its records
expire within AGENT_PRESENCE_SECONDS.

Without Redis the cache is the process's own memory, which is right for the one process of the
embedded setup.
"""

import asyncio
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("logfleet.presence")

PROCESS = uuid.uuid4().hex  # this process's mark on the records it writes
CHUNK = 1000  # records per pipelined write

_open: Counter = Counter()  # agent id (str) → sockets open on this process
_lock = threading.Lock()  # sockets open and close on a worker thread; the refresh reads on another
_refresher: asyncio.Task | None = None


def presence_key(agent_id) -> str:
    return f"agent-presence:{agent_id}"


def connected_ids(agent_ids: Iterable) -> set:
    """The ids among `agent_ids` with a socket open on some process (one cache read for all)."""
    ids = list(agent_ids)
    if not ids:
        return set()
    try:
        found = cache.get_many([presence_key(agent_id) for agent_id in ids])
    except Exception:
        logger.warning("shared cache unavailable; agents shown as not connected", exc_info=True)
        return set()
    return {agent_id for agent_id in ids if presence_key(agent_id) in found}


def socket_opened(agent_id) -> None:
    """An agent socket of this process is open (sync: call it from a worker thread)."""
    agent_id = str(agent_id)
    with _lock:
        _open[agent_id] += 1
    try:
        cache.set(presence_key(agent_id), PROCESS, settings.AGENT_PRESENCE_SECONDS)
    except Exception:
        logger.warning("could not record agent %s as connected", agent_id, exc_info=True)


def socket_closed(agent_id) -> None:
    """An agent socket of this process closed (sync: call it from a worker thread)."""
    agent_id = str(agent_id)
    with _lock:
        _open[agent_id] -= 1
        if _open[agent_id] > 0:
            return
        del _open[agent_id]
    try:
        if cache.get(presence_key(agent_id)) == PROCESS:
            cache.delete(presence_key(agent_id))
    except Exception:
        logger.warning("could not record agent %s as disconnected", agent_id, exc_info=True)


def refresh() -> int:
    """Write this process's records again, with a fresh lifetime; how many."""
    with _lock:
        agent_ids = list(_open)
    for start in range(0, len(agent_ids), CHUNK):
        chunk = agent_ids[start : start + CHUNK]
        cache.set_many({presence_key(agent_id): PROCESS for agent_id in chunk}, settings.AGENT_PRESENCE_SECONDS)
    return len(agent_ids)


async def _refresh_while_open():
    global _refresher
    try:
        while _open:
            await asyncio.sleep(settings.AGENT_PRESENCE_SECONDS / 3)
            try:
                await asyncio.to_thread(refresh)
            except Exception:
                logger.warning("could not refresh the presence of this process's agents", exc_info=True)
    finally:
        if _refresher is asyncio.current_task():
            _refresher = None


def keep_fresh() -> None:
    """Make sure this process's refresher runs (call on the event loop after `socket_opened`); it
    stops by itself when the process has no agent socket left."""
    global _refresher
    loop = asyncio.get_running_loop()
    if _refresher is None or _refresher.done() or _refresher.get_loop() is not loop:
        _refresher = loop.create_task(_refresh_while_open())
