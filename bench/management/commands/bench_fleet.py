"""Benchmark of a big fleet on the agent socket: simulated agents, each with its own socket and key,
heartbeating on their interval against one and two server processes, under Daphne and Uvicorn;
then the same heartbeats over HTTP at the same rate. Optionally a restart of the servers with the
fleet connected. Uses the configured database and Redis (PostgreSQL + Redis for two processes).
"""

import multiprocessing
import os
import signal
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from agents import bundle
from agents.models import Agent
from apikeys import keys
from apikeys.models import APIKey
from bench.fleet import raise_open_file_limit, run_fleet
from bench.live import LiveServer

PERMISSIONS = ["edge:heartbeat", "edge:stream"]
AGENTS_PER_ORG = 1000  # a fleet of many organizations, each within its quotas


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _settle(pids: list[int], *, quiet: float = 0.05, timeout: float = 120.0) -> None:
    """Wait until the servers are idle (under `quiet` CPU seconds in a second)."""
    deadline = time.monotonic() + timeout
    before = sum(_cpu_seconds(pid) for pid in pids)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = sum(_cpu_seconds(pid) for pid in pids)
        if now - before < quiet:
            return
        before = now


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Command(BaseCommand):
    help = (
        "Simulated agents with their own sockets and keys heartbeating over the agent socket against one "
        "and two server processes (Daphne, Uvicorn), then over HTTP at the same rate: connected agents, "
        "heartbeats/s, ack p50/p99, server RSS and CPU seconds per 1000 heartbeats; --restart measures "
        "how long the fleet takes to reconnect after a restart."
    )

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=1000, help="simulated agents (default 1000)")
        parser.add_argument("--interval", type=float, default=30.0, help="heartbeat interval in seconds (30)")
        parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per phase (60)")
        parser.add_argument("--servers", default="daphne,uvicorn", help="server kinds (daphne,uvicorn)")
        parser.add_argument("--processes", default="1,2", help="server process counts (1,2)")
        parser.add_argument("--restart", action="store_true", help="restart the servers with the fleet connected")
        parser.add_argument("--http-connections", type=int, default=32, help="keep-alive connections for HTTP")

    def handle(self, *args, **options):
        limit = raise_open_file_limit()
        if limit < options["agents"] + 1000:
            raise CommandError(f"the open-file limit is {limit}: too low for {options['agents']} agents")
        processes = [int(n) for n in options["processes"].split(",")]
        if max(processes) > 1 and not settings.REDIS_URL:
            raise CommandError("two server processes need REDIS_URL (the shared cache and channel layer)")
        call_command("migrate", verbosity=0)
        self.stdout.write(f"open-file limit {limit}; creating {options['agents']} agents and keys ...")
        organizations, fleet = self._setup(options["agents"])
        rows = []
        try:
            for kind in options["servers"].split(","):
                for count in processes:
                    self.stdout.write(f"{kind} x{count}: load {_load()}")
                    rows.append(self._configuration(kind, count, fleet, options))
        finally:
            Organization.objects.filter(pk__in=[o.pk for o in organizations]).delete()
        self._report(rows, options)

    def _setup(self, count: int):
        organizations, fleet = [], []
        for start in range(0, count, AGENTS_PER_ORG):
            organization = Organization.objects.create(name="bench fleet", slug=f"fleet-{uuid.uuid4().hex[:10]}")
            organizations.append(organization)
            size = min(AGENTS_PER_ORG, count - start)
            raws = [keys.generate() for _ in range(size)]
            APIKey.objects.bulk_create(
                [
                    APIKey(
                        organization=organization,
                        name=f"agent-{start + i:05d}",
                        key_prefix=keys.parse_prefix(raw),
                        key_hash=keys.hash_key(raw),
                        permissions=PERMISSIONS,
                    )
                    for i, raw in enumerate(raws)
                ]
            )
            agents = Agent.objects.bulk_create(
                [Agent(organization=organization, name=f"fleet-{start + i:05d}") for i in range(size)]
            )
            memo: dict = {}
            for agent in agents:
                agent.config_hash = bundle.bundle_hash(agent, memo)
            Agent.objects.bulk_update(agents, ["config_hash"], batch_size=1000)
            fleet += [(str(agent.pk), raw) for agent, raw in zip(agents, raws, strict=True)]
        return organizations, fleet

    def _start(self, kind: str, count: int, ports: list[int] | None = None) -> list[LiveServer]:
        env = {"SECRET_KEY": settings.SECRET_KEY, "LOG_LEVEL": "WARNING"}
        try:
            return [
                LiveServer(env, access_log=False, server=kind, port=ports[i] if ports else None) for i in range(count)
            ]
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None

    def _configuration(self, kind: str, count: int, fleet, options) -> dict:
        servers = self._start(kind, count)
        agents = [
            (agent_id, raw, servers[i % count].url.replace("http://", "ws://") + f"/api/v1/edge/agents/{agent_id}/ws")
            for i, (agent_id, raw) in enumerate(fleet)
        ]
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        client = context.Process(target=run_fleet, args=(child, agents), daemon=True)
        client.start()
        row = {"kind": kind, "processes": count, "load": _load()}
        try:

            def ask(command, **args):
                parent.send((command, args))
                return parent.recv()

            connect = ask("connect", interval=options["interval"], timeout=max(120.0, len(fleet) / 50))
            row["connect_seconds"] = connect["seconds"]
            pids = [server.process.pid for server in servers]
            before = sum(_cpu_seconds(pid) for pid in pids)
            beat = ask("beat", duration=options["duration"])
            cpu = sum(_cpu_seconds(pid) for pid in pids) - before
            row["socket"] = {
                **beat,
                "rss_mb": sum(_rss_mb(pid) for pid in pids),
                "cpu_per_1000": cpu / max(beat["count"], 1) * 1000,
            }
            if options["restart"]:
                row["restart"] = self._restart(kind, count, servers, ask)
                pids = [server.process.pid for server in servers]
            row["client_rss_mb"] = ask("close")["rss_mb"]
            _settle(pids)  # the sockets' goodbyes are not the HTTP phase's CPU
            rate = len(fleet) / options["interval"]
            before = sum(_cpu_seconds(pid) for pid in pids)
            http = ask("http", rate=rate, duration=options["duration"], connections=options["http_connections"])
            cpu = sum(_cpu_seconds(pid) for pid in pids) - before
            row["http"] = {
                **http,
                "acks_per_second": http["count"] / options["duration"],
                "rss_mb": sum(_rss_mb(pid) for pid in pids),
                "cpu_per_1000": cpu / max(http["count"], 1) * 1000,
            }
            ask("stop")
        finally:
            client.join(timeout=30)
            if client.is_alive():
                client.kill()
            for server in servers:
                server.stop()
        return row

    def _restart(self, kind, count, servers, ask) -> dict:
        """Stop every server process (SIGTERM) and start new ones on the same ports."""
        ports = [server.port for server in servers]
        since = ask("now")
        for server in servers:
            server.process.send_signal(signal.SIGTERM)
        for server in servers:
            server.stop()
        servers[:] = self._start(kind, count, ports)
        return ask("watch_reconnect", since=since, timeout=180.0)

    def _report(self, rows, options):
        self.stdout.write("")
        self.stdout.write(
            f"{options['agents']} agents, heartbeat every {options['interval']:g} s, "
            f"{options['duration']:g} s measured per phase"
        )
        header = (
            f"{'server':14} {'path':7} {'connected':>9} {'beats/s':>8} {'ack p50':>8} {'ack p99':>8} "
            f"{'RSS MiB':>8} {'CPU s/1k':>9} {'errors':>7}  load"
        )
        self.stdout.write(header)
        for row in rows:
            name = f"{row['kind']} x{row['processes']}"
            for path in ("socket", "http"):
                data = row[path]
                errors = sum(data.get("errors", {}).values()) + sum(
                    n for status, n in data.get("statuses", {}).items() if status != 200
                )
                connected = data.get("connected", "-")
                self.stdout.write(
                    f"{name:14} {path:7} {connected!s:>9} {data['acks_per_second']:>8.1f} {data['p50']:>8.1f} "
                    f"{data['p99']:>8.1f} {data['rss_mb']:>8.0f} {data['cpu_per_1000']:>9.2f} {errors:>7}  "
                    f"{row['load']}"
                )
        for row in rows:
            socket_cpu, http_cpu = row["socket"]["cpu_per_1000"], row["http"]["cpu_per_1000"]
            line = (
                f"{row['kind']} x{row['processes']}: connected in {row['connect_seconds']:.1f} s; "
                f"socket/HTTP CPU per heartbeat {socket_cpu / http_cpu if http_cpu else float('nan'):.2f} "
                f"(target <= 0.33); fleet client RSS {row['client_rss_mb']:.0f} MiB"
            )
            if "restart" in row:
                restart = row["restart"]
                line += (
                    f"; after a restart {restart['connected']} connected again in {restart['seconds']:.1f} s, "
                    f"at most {restart['peak_per_second']} handshakes in one second"
                )
            self.stdout.write(line)
            for path in ("socket", "http"):
                problems = {**row[path].get("errors", {}), **row[path].get("statuses", {})}
                problems.pop(200, None)
                if problems:
                    self.stdout.write(f"  {path} errors: {problems}")
