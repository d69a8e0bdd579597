"""Benchmark of the edge hot path: heartbeats against a bare endpoint on the same server.

Starts Daphne itself on a free port, registers N agents, then drives load with wrk (a
separate, low-overhead process): first the unauthenticated /healthz, then heartbeats of every
agent in turn with the key header. Also measures the CPU cost of API-key authentication
in-process. Uses the configured database (DATABASE_URL) and Redis (REDIS_URL), and cleans up.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from agents import services as agent_services
from agents.models import Agent
from apikeys import services as key_services
from bench.live import LiveServer

LUA = """
local ids = {%(ids)s}
local key = "%(key)s"
local counter = 0
local body = '{"status":"online","version":"1.0.0","metrics":{"cpu":12.5,"memory":41.0,"disk":63.2}}'
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}

request = function()
  counter = counter + 1
  local id = ids[(counter %% #ids) + 1]
  return wrk.format("POST", "/api/v1/edge/agents/" .. id .. "/heartbeat", headers, body)
end
"""


def parse_wrk(output: str) -> dict:
    def number(pattern: str, default: float = 0.0) -> float:
        match = re.search(pattern, output)
        return float(match.group(1)) if match else default

    def latency_ms(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "requests": int(number(r"(\d+) requests in")),
        "non_2xx": int(number(r"Non-2xx or 3xx responses:\s+(\d+)")),
        "errors": int(sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))),
        "p50": latency_ms("50"),
        "p99": latency_ms("99"),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Command(BaseCommand):
    help = (
        "Benchmark heartbeats (API-key auth, rate limit, one UPDATE) against the bare /healthz endpoint "
        "on a Daphne server started here, driven by wrk. Prints requests/s, p50/p99 and the ratio."
    )

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=200, help="agents to register (default 200)")
        parser.add_argument("--duration", type=int, default=10, help="seconds of load per endpoint (default 10)")
        parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
        parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")

    def handle(self, *args, **options):
        if shutil.which("wrk") is None:
            raise CommandError("wrk is not installed: apt-get install wrk (or make bench-tools)")
        call_command("migrate", verbosity=0)
        organization, raw_key, agent_ids = self._setup(options["agents"])
        server = None
        try:
            server = self._start_server()
            port = server.port
            self.stdout.write(
                f"server: daphne on 127.0.0.1:{port}, database {settings.DATABASES['default']['ENGINE']}, "
                f"cache {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}"
            )
            # Warm-up: every agent once, so the key record is cached like in steady state.
            self._wrk(port, "/healthz", 2, options, None)
            bare = self._measured(server, port, "/healthz", options, None)
            script = self._lua(agent_ids, raw_key)
            self._wrk(port, "/", 2, options, script)
            beats = self._measured(server, port, "/", options, script)
            beat_count = Agent.objects.filter(organization=organization, last_heartbeat_at__isnull=False).count()
        finally:
            if server is not None:
                server.stop()
            auth = self._auth_cpu(raw_key)
            organization.delete()
        self._report(bare, beats, auth, beat_count, options)

    def _setup(self, count: int):
        organization = Organization.objects.create(name="bench", slug=f"bench-{uuid.uuid4().hex[:8]}")
        _key, raw = key_services.api_key_create(
            organization=organization, name="bench", permissions=["edge:heartbeat"], actor=key_services.Actor()
        )
        agents = Agent.objects.bulk_create(
            [Agent(organization=organization, name=f"bench-{i:05d}") for i in range(count)]
        )
        for agent in agents:
            agent_services.agent_refresh_config_hash(agent=agent)
        return organization, raw, [str(agent.pk) for agent in agents]

    def _start_server(self) -> LiveServer:
        try:
            return LiveServer(
                {"SECRET_KEY": settings.SECRET_KEY, "LOGFLEET_RATE_EDGE": "100000000/m", "LOG_LEVEL": "WARNING"},
                access_log=False,
            )
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None

    def _lua(self, agent_ids, raw_key) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
            handle.write(LUA % {"ids": ",".join(f'"{i}"' for i in agent_ids), "key": raw_key})
        return handle.name

    def _wrk(self, port, path, duration, options, script) -> dict:
        command = [
            "wrk",
            "--latency",
            "-t",
            str(options["threads"]),
            "-c",
            str(options["connections"]),
            "-d",
            f"{duration}s",
        ]
        if script:
            command += ["-s", script]
        command.append(f"http://127.0.0.1:{port}{path}")
        result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
        if result.returncode != 0:
            raise CommandError(f"wrk failed: {result.stderr}")
        return parse_wrk(result.stdout)

    def _measured(self, server, port, path, options, script) -> dict:
        """A wrk run, with the server process's CPU time per request."""
        before = _cpu_seconds(server.process.pid)
        row = self._wrk(port, path, options["duration"], options, script)
        row["cpu_ms"] = (_cpu_seconds(server.process.pid) - before) * 1000 / max(row["requests"], 1)
        return row

    def _auth_cpu(self, raw_key: str, rounds: int = 2000) -> dict:
        """CPU time of one API-key authentication: warm (shared cache) and cold (database)."""
        key_services.authenticate(raw_key)
        start = time.process_time()
        for _ in range(rounds):
            key_services.authenticate(raw_key)
        warm = (time.process_time() - start) / rounds
        cold_rounds = rounds // 10
        total = 0.0
        prefix = raw_key[:16]
        for _ in range(cold_rounds):
            cache.delete(f"apikey:{prefix}")
            start = time.process_time()
            key_services.authenticate(raw_key)
            total += time.process_time() - start
        return {"warm_ms": warm * 1000, "cold_ms": total / cold_rounds * 1000}

    def _report(self, bare, beats, auth, beat_count, options):
        ratio = beats["rps"] / bare["rps"] if bare["rps"] else 0.0
        rows = [
            ("GET /healthz (bare)", bare),
            ("POST heartbeat", beats),
        ]
        self.stdout.write("")
        self.stdout.write(
            f"{'endpoint':24} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'non-2xx':>8} {'CPU ms/req':>11}"  # noqa: E501
        )
        for name, row in rows:
            self.stdout.write(
                f"{name:24} {row['rps']:>10.0f} {row['p50']:>8.2f} {row['p99']:>8.2f} {row['requests']:>9} "
                f"{row['non_2xx'] + row['errors']:>8} {row['cpu_ms']:>11.2f}"
            )
        self.stdout.write("")
        self.stdout.write(f"heartbeat / bare throughput: {ratio:.2f} (target >= 0.33)")
        self.stdout.write(
            f"API-key authentication CPU per request: warm {auth['warm_ms']:.3f} ms, "
            f"cold (database) {auth['cold_ms']:.3f} ms (target < 1 ms)"
        )
        self.stdout.write(
            f"agents with a recorded heartbeat: {beat_count} of {options['agents']}; "
            f"{options['connections']} connections, {options['duration']} s per endpoint"
        )
