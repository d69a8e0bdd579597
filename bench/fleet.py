"""Simulated agents for `manage.py bench_fleet`: stdlib and `websockets` only, no Django, run in their
own process (one asyncio loop) and driven over a pipe.

Each agent has its own socket and key and heartbeats on its interval (a random phase, so that the
fleet's beats are spread like a real fleet's). A socket that closes reconnects with jittered
exponential backoff, so that a restarted server is not hit by every agent in the same second. The
HTTP comparison sends the same heartbeats at the same rate over keep-alive connections.
"""

import asyncio
import json
import os
import random
import resource
import time
from collections import Counter
from urllib.parse import urlsplit

BEAT = {"type": "heartbeat", "status": "online", "version": "1.0.0", "metrics": {"cpu": 12.5, "memory": 41.0}}
CONNECT_CONCURRENCY = 50  # handshakes in flight at once, so that a start is a ramp, not a flood


def raise_open_file_limit() -> int:
    """The soft limit of open files up to the hard one (a socket is a file); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def backoff(attempt: int, *, spread: float = 15.0, cap: float = 30.0) -> float:
    """Seconds before reconnect `attempt` (1, 2, ...), as the reference agent waits: full jitter over
    `spread` seconds for the first, then over an exponential bound at most `cap`, so that agents
    dropped together (a restarted server) come back spread over a quarter of a minute."""
    return random.uniform(0, min(cap, spread * 2 ** min(attempt - 1, 16)))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Agent:
    __slots__ = ("attempt", "id", "key", "pending", "url", "ws")

    def __init__(self, agent_id: str, key: str, url: str):
        self.id, self.key, self.url = agent_id, key, url
        self.ws = None
        self.attempt = 0
        self.pending: dict[int, float] = {}


class Fleet:
    def __init__(self, agents: list[tuple[str, str, str]]):
        self.agents = [Agent(*agent) for agent in agents]
        self.connects: list[float] = []  # monotonic times of successful handshakes
        self.latencies: list[float] = []
        self.errors: Counter = Counter()
        self.acks = 0
        self.running = True
        self.beating = False
        self.interval = 30.0
        self.gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        self.tasks: list[asyncio.Task] = []
        self.seq = 0

    @property
    def connected(self) -> int:
        return sum(1 for agent in self.agents if agent.ws is not None)

    def start(self):
        self.tasks = [asyncio.ensure_future(self._life(agent)) for agent in self.agents]
        self.tasks += [asyncio.ensure_future(self._beats(agent)) for agent in self.agents]

    async def _life(self, agent: Agent):
        import websockets

        while self.running:
            try:
                async with self.gate:
                    ws = await websockets.connect(
                        agent.url,
                        additional_headers={"X-API-Key": agent.key},
                        open_timeout=30,
                        ping_interval=None,  # the heartbeats are the liveness check
                        compression=None,
                        max_queue=16,
                    )
            except Exception as exc:
                self.errors[f"connect: {type(exc).__name__}"] += 1
                agent.attempt += 1
                await asyncio.sleep(backoff(agent.attempt))
                continue
            agent.ws, agent.attempt = ws, 0
            self.connects.append(time.monotonic())
            try:
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame.get("type") == "heartbeat.ack":
                        sent = agent.pending.pop(frame.get("ref"), None)
                        if sent is not None:
                            self.latencies.append(time.perf_counter() - sent)
                            self.acks += 1
                    elif frame.get("type") == "error":
                        self.errors[f"frame: {frame.get('error')}"] += 1
            except Exception as exc:
                self.errors[f"socket: {type(exc).__name__}"] += 1
            agent.ws = None
            agent.pending.clear()
            if self.running:
                agent.attempt += 1
                await asyncio.sleep(backoff(agent.attempt))

    async def _beats(self, agent: Agent):
        await asyncio.sleep(random.uniform(0, self.interval))
        while self.running:
            if self.beating and agent.ws is not None:
                self.seq += 1
                agent.pending[self.seq] = time.perf_counter()
                try:
                    await agent.ws.send(json.dumps({**BEAT, "ref": self.seq}))
                except Exception:
                    agent.pending.pop(self.seq, None)
            await asyncio.sleep(self.interval)

    async def wait_connected(self, timeout: float) -> float:
        """Seconds until every agent is connected (or the timeout)."""
        started = time.monotonic()
        while self.connected < len(self.agents) and time.monotonic() - started < timeout:
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def stop(self):
        self.running = False
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(a.ws.close() for a in self.agents if a.ws is not None), return_exceptions=True)
        for agent in self.agents:
            agent.ws = None


async def _http_beats(targets: list[tuple[str, str, str]], rate: float, duration: float, connections: int) -> dict:
    """Heartbeats over HTTP/1.1 keep-alive at `rate` per second for `duration` s, agents in turn."""
    body = json.dumps({k: v for k, v in BEAT.items() if k != "type"}).encode()
    latencies: list[float] = []
    statuses: Counter = Counter()

    async def connection(queue: asyncio.Queue, base: str):
        host, _, port = base.rpartition(":")
        reader = writer = None
        while True:
            item = await queue.get()
            if item is None:
                break
            agent_id, key = item
            request = (
                f"POST /api/v1/edge/agents/{agent_id}/heartbeat HTTP/1.1\r\nHost: {host}\r\n"
                f"X-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            try:
                if writer is None or writer.is_closing():
                    reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                statuses[int(status_line.split()[1])] += 1
                latencies.append(time.perf_counter() - started)
            except Exception as exc:
                statuses[type(exc).__name__] += 1
                writer = None
        if writer is not None:
            writer.close()

    # One queue per server process, each with its own keep-alive connections (a load balancer's pool).
    bases = sorted({urlsplit(url).netloc for _agent, _key, url in targets})
    queues = {base: asyncio.Queue() for base in bases}
    per_base = max(1, connections // len(bases))
    workers = [asyncio.ensure_future(connection(queues[base], base)) for base in bases for _ in range(per_base)]
    # Each target's socket URL names its server process; the HTTP heartbeat goes to the same one.
    routes = [(agent_id, key, urlsplit(url).netloc) for agent_id, key, url in targets]
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < duration:
        due = int((time.monotonic() - started) * rate)
        while sent < due:
            agent_id, key, base = routes[sent % len(routes)]
            queues[base].put_nowait((agent_id, key))
            sent += 1
        await asyncio.sleep(0.005)
    for queue in queues.values():
        for _ in range(per_base):
            queue.put_nowait(None)
    await asyncio.gather(*workers)
    return {"sent": sent, "latencies": latencies, "statuses": dict(statuses)}


def _summary(latencies: list[float]) -> dict:
    ms = [value * 1000 for value in latencies]
    return {"count": len(ms), "p50": percentile(ms, 0.5), "p99": percentile(ms, 0.99)}


async def _serve(conn, agents):
    raise_open_file_limit()
    fleet = Fleet(agents)
    loop = asyncio.get_running_loop()
    while True:
        command, args = await loop.run_in_executor(None, conn.recv)
        if command == "connect":
            # Agents heartbeat from their start, as the reference agent does (its beats do not wait
            # for the socket): a fleet that connects, or reconnects after a restart, is beating.
            fleet.interval = args["interval"]
            fleet.beating = True
            fleet.start()
            seconds = await fleet.wait_connected(args["timeout"])
            conn.send({"connected": fleet.connected, "seconds": seconds, "errors": dict(fleet.errors)})
        elif command == "beat":
            fleet.latencies, fleet.acks, fleet.errors = [], 0, Counter()
            started = time.monotonic()
            await asyncio.sleep(args["duration"])
            elapsed = time.monotonic() - started
            conn.send(
                {
                    "connected": fleet.connected,
                    "acks_per_second": fleet.acks / elapsed,
                    **_summary(fleet.latencies),
                    "errors": dict(fleet.errors),
                }
            )
        elif command == "watch_reconnect":
            # The server went away and comes back: how long until all are connected again, and the
            # busiest second of handshakes.
            since = args["since"]
            seconds = await fleet.wait_connected(args["timeout"])
            per_second = Counter(int(at - since) for at in fleet.connects if at >= since)
            conn.send(
                {
                    "connected": fleet.connected,
                    "seconds": time.monotonic() - since,
                    "waited": seconds,
                    "peak_per_second": max(per_second.values(), default=0),
                    "errors": dict(fleet.errors),
                }
            )
        elif command == "now":
            conn.send(time.monotonic())
        elif command == "http":
            fleet.beating = False
            result = await _http_beats(agents, args["rate"], args["duration"], args["connections"])
            conn.send({"sent": result["sent"], **_summary(result["latencies"]), "statuses": result["statuses"]})
        elif command == "close":
            rss = _rss_mb(os.getpid())
            await fleet.stop()
            conn.send({"rss_mb": rss})
        elif command == "stop":
            conn.send(None)
            return


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_fleet(conn, agents):
    """Entry of the fleet's process: `agents` is [(agent id, raw key, socket URL)]."""
    asyncio.run(_serve(conn, agents))
