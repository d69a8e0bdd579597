"""Benchmark of metric ingestion, queries and retention against a real server (Daphne) started here.

1. Push: concurrent clients (in a separate process) post batches of 5 000 samples over 1 000
   series for a fixed time; samples/s stored, batch p50/p99.
2. Raw load: the same rows straight into the database (COPY on PostgreSQL, executemany on
   SQLite); rows/s, and the push/raw ratio.
3. Where a batch's time goes: the same batches in-process, through the API's JSON parser
   (decode) and ingest (validate, series: lookups, totals and rollups, copy: the samples);
   milliseconds per batch and each stage's share.
4. Query: 10 000 000 samples over 24 h for one name; /metrics/query over 24 h at step 60 with
   `sum` and with `group_by=agent_id`, p50/p99.
5. Retention: a day of 10 000 000 samples past the retention; `prune_metrics` time.
Uses the configured database and Redis, and deletes what it created.
"""

import io
import itertools
import json
import os
import time
import uuid

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from accounts.models import Organization, User
from accounts.services import session_start
from agents.models import Agent
from apikeys import services as key_services
from bench import loadgen
from bench.live import LiveServer
from logfleet.api.parsers import StrictJSONParser
from metrics import ingest, partitions
from metrics.models import Sample, Series

SERIES = 1000
BATCH = 5000


def _samples(now: float, series: int, count: int) -> list[dict]:
    return [
        {
            "name": "bench_requests_total",
            "type": "counter",
            "labels": {"series": str(i % series)},
            "timestamp": now,
            "value": 1.0,
        }
        for i in range(count)
    ]


class Command(BaseCommand):
    help = "Benchmark metric pushes (HTTP vs raw bulk load), sample validation and /metrics/query; prints a table."

    def add_arguments(self, parser):
        parser.add_argument("--duration", type=int, default=10, help="seconds of pushing (default 10)")
        parser.add_argument("--clients", type=int, default=4, help="concurrent pushing clients (default 4)")
        parser.add_argument(
            "--query-samples", type=int, default=10_000_000, help="samples loaded for the query test (default 10M)"
        )
        parser.add_argument(
            "--prune-samples",
            type=int,
            default=10_000_000,
            help="samples of the day the prune test drops (default 10M)",
        )
        parser.add_argument("--stage-batches", type=int, default=20, help="batches timed stage by stage (default 20)")
        parser.add_argument("--agents", type=int, default=10, help="agents the series are spread over (default 10)")

    def handle(self, *args, **options):
        call_command("migrate", verbosity=0)
        organization = Organization.objects.create(name="bench", slug=f"bench-{uuid.uuid4().hex[:8]}")
        try:
            self._run(organization, options)
        finally:
            self.stdout.write("cleaning up ...")
            Sample.objects.filter(series__organization=organization).delete()
            organization.delete()

    def _run(self, organization, options):
        _key, raw = key_services.api_key_create(
            organization=organization, name="bench", permissions=["edge:metrics"], actor=key_services.Actor()
        )
        agents = [Agent.objects.create(organization=organization, name=f"bench-{i}") for i in range(options["agents"])]
        user = User.objects.create_user(
            email=f"{organization.slug}@bench.invalid", password=None, name="bench", organization=organization
        )
        token = session_start(user=user).token
        rows = []

        server = LiveServer(
            {
                "SECRET_KEY": settings.SECRET_KEY,
                "LOGFLEET_RATE_EDGE": "100000000/m",
                "LOGFLEET_RATE_DASHBOARD": "100000000/m",
                "LOG_LEVEL": "WARNING",
            },
            access_log=False,
        )
        try:
            rows.append(self._push(server, raw, agents, options))
            stored = rows[-1][1]
            raw_rate = self._raw_load(agents)
            rows.append(("raw bulk load (same rows)", raw_rate, "", ""))
            stages = self._stages(agents[0], options["stage_batches"])
            self._load_query_data(agents, options["query_samples"])
            for label, params in (
                ("query 24h step 60 sum", {}),
                ("query 24h group_by=agent_id", {"group_by": "agent_id"}),
            ):
                rows.append(self._query(server, token, label, params))
        finally:
            server.stop()
        rows.append(self._prune(agents, options["prune_samples"]))
        self._report(rows, stored, raw_rate, stages, options)

    def _push(self, server, raw_key, agents, options):
        now = time.time()
        clients = []
        per_agent = BATCH  # each batch: 5 000 samples over 1 000 series of one agent
        for client in range(options["clients"]):
            requests = []
            for n in range(40):
                agent = agents[(client + n) % len(agents)]
                body = {
                    "batch_id": f"bench-{client}-{n}-{uuid.uuid4().hex[:6]}",
                    "samples": _samples(now, SERIES, per_agent),
                }
                requests.append(
                    loadgen.json_request(
                        "POST", f"/api/v1/edge/agents/{agent.pk}/metrics", body, {"X-API-Key": raw_key}
                    )
                )
            clients.append(requests)
        # Warm-up: creates the series, so the timed run measures steady-state ingestion.
        loadgen.run(server.url, [[clients[0][0]]], 1)
        started = time.monotonic()
        results, errors = loadgen.run(server.url, clients, options["duration"])
        elapsed = time.monotonic() - started
        accepted = sum(json.loads(payload)["accepted"] for _lat, status, payload, _path in results if status == 202)
        failed = sum(1 for _lat, status, _p, _path in results if status != 202) + len(errors)
        latencies = [lat * 1000 for lat, _s, _p, _path in results]
        return (
            f"HTTP push, {options['clients']} clients x {BATCH} samples",
            accepted / elapsed,
            loadgen.percentile(latencies, 0.5),
            loadgen.percentile(latencies, 0.99),
            failed,
        )

    def _raw_rows(self, agents, count):
        series_ids = list(Series.objects.filter(agent__in=agents).values_list("id", flat=True))
        ts = int(time.time() * 1000)
        return [(series_ids[i % len(series_ids)], ts, 1.0, None, None) for i in range(count)]

    def _raw_load(self, agents) -> float:
        rows = self._raw_rows(agents, 100_000)
        started = time.perf_counter()
        self._bulk_insert(rows)
        rate = len(rows) / (time.perf_counter() - started)
        return rate

    def _bulk_insert(self, rows, chunk: int = 50_000):
        """The raw load: row by row through the driver (COPY's text format on PostgreSQL)."""
        table = connection.ops.quote_name(Sample._meta.db_table)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            with transaction.atomic(), connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    with cursor.copy(f"COPY {table} (series_id, ts, value, count, buckets) FROM STDIN") as copy:
                        for row in part:
                            copy.write_row(row)
                else:
                    cursor.executemany(
                        f"INSERT INTO {table} (series_id, ts, value, count, buckets) VALUES (%s, %s, %s, %s, %s)",  # noqa: S608
                        [(Sample._meta.get_field("series").get_db_prep_value(r[0], connection), *r[1:]) for r in part],
                    )

    def _load(self, series_ids, *, start_ms: int, span_ms: int, total: int, chunk: int = 500_000):
        """`total` samples spread evenly over the series and over [start_ms, start_ms + span_ms), a
        chunk at a time (memory stays small), as samples pushed one by one would be."""
        partitions.partitions_ensure(first_ms=start_ms, last_ms=start_ms + span_ms - 1)
        per_series = max(1, total // len(series_ids))
        spacing = max(1, span_ms // per_series)
        rows = (
            (series_id, start_ms + k * spacing, 1.0, None, None) for k in range(per_series) for series_id in series_ids
        )
        while part := list(itertools.islice(rows, chunk)):
            self._bulk_insert(part, chunk=chunk)

    def _stages(self, agent, batches: int) -> dict:
        """Milliseconds per batch in each stage, over `batches` batches of one agent's known series."""
        bodies = [
            json.dumps({"batch_id": uuid.uuid4().hex, "samples": _samples(time.time(), SERIES, BATCH)}).encode()
            for _ in range(batches)
        ]
        parser, timings = StrictJSONParser(), {}
        started = time.perf_counter()
        for body in bodies:
            before = time.perf_counter()
            data = parser.parse(io.BytesIO(body), "application/json", {"encoding": "utf-8"})
            timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - before
            ingest.ingest(agent=agent, batch_id=data["batch_id"], samples=data["samples"], timings=timings)
        total = time.perf_counter() - started
        timings["other (batch id, commit)"] = total - sum(timings.values())
        return {stage: seconds * 1000 / batches for stage, seconds in timings.items()}

    def _load_query_data(self, agents, total: int):
        """`total` samples over the last 24 h, spread evenly over the 1 000 series of the push test."""
        self.stdout.write(f"loading {total} samples for the query test ...")
        series_ids = list(Series.objects.filter(agent__in=agents).values_list("id", flat=True))
        end = int(time.time() * 1000)
        self._load(series_ids, start_ms=end - 86_400_000, span_ms=86_400_000, total=total)
        # The rows went in around the ingest path: build their per-minute rollups as ingest would have.
        ingest.rollups_rebuild(organization_id=agents[0].organization_id)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")

    def _prune(self, agents, total: int):
        """A whole day of `total` samples past the retention, and prune_metrics' time to remove it."""
        self.stdout.write(f"loading {total} samples of a day past the retention for the prune test ...")
        series_ids = list(Series.objects.filter(agent__in=agents).values_list("id", flat=True))
        day = (int(time.time() * 1000) - (settings.METRICS_RETENTION_DAYS + 2) * 86_400_000) // 86_400_000
        self._load(series_ids, start_ms=day * 86_400_000, span_ms=86_400_000, total=total)
        if connection.vendor == "postgresql":
            # A day past the retention was vacuumed weeks ago: so is this one, or the autovacuum a
            # fresh load sets off holds the partition and the drop waits for it to give way (1 s).
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(partitions.partition_name(day))}")
        started = time.perf_counter()
        call_command("prune_metrics", stdout=io.StringIO())
        elapsed = time.perf_counter() - started
        return (f"prune_metrics, a day of {total} samples (s)", elapsed, "", "", "")

    def _query(self, server, token, label, params):
        end = int(time.time())
        query = {"name": "bench_requests_total", "start": end - 86400, "end": end, "step": 60, **params}
        path = "/api/v1/metrics/query?" + "&".join(f"{k}={v}" for k, v in query.items())
        request = ("GET", path, b"", {"Authorization": f"Bearer {token}"})
        loadgen.run(server.url, [[request]], 1)  # warm-up
        results, errors = loadgen.run(server.url, [[request]], 8)
        latencies = [lat * 1000 for lat, status, _p, _path in results if status == 200]
        failed = sum(1 for _l, status, _p, _path in results if status != 200) + len(errors)
        return (
            label,
            len(results) / 8,
            loadgen.percentile(latencies, 0.5),
            loadgen.percentile(latencies, 0.99),
            failed,
        )

    def _report(self, rows, stored, raw_rate, stages, options):
        self.stdout.write("")
        self.stdout.write(
            f"database {connection.vendor}, cache {settings.CACHES['default']['BACKEND'].rsplit('.')[-1]}, "
            f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}"
        )
        self.stdout.write(f"{'measurement':42} {'rate/s':>12} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
        for row in rows:
            name, rate, p50, p99 = row[:4]
            errors = row[4] if len(row) > 4 else ""
            p50 = f"{p50:9.1f}" if p50 != "" else " " * 9
            p99 = f"{p99:9.1f}" if p99 != "" else " " * 9
            rate = f"{rate:12.2f}" if rate < 100 else f"{rate:12.0f}"
            self.stdout.write(f"{name:42} {rate} {p50} {p99} {errors!s:>7}")
        self.stdout.write("")
        self.stdout.write(f"stored through HTTP / raw bulk load: {stored / raw_rate:.1%} (target >= 45%)")
        self.stdout.write("")
        total = sum(stages.values())
        self.stdout.write(f"a batch of {BATCH} samples in-process, by stage: {'ms':>9} {'share':>7}")
        for stage, ms in stages.items():
            self.stdout.write(f"  {stage:48} {ms:9.1f} {ms / total:7.1%}")
        self.stdout.write("")
        self.stdout.write(
            "targets on PostgreSQL: >= 150 000 samples/s through HTTP, batch p99 < 100 ms; 24 h query of 10M "
            "samples p50 < 300 ms; prune of a day of 10M samples < 1 s"
        )
