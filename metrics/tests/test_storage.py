"""How samples are stored: the series cache and the database as its truth, the day partitions of
PostgreSQL (made when a batch needs one, and read only where a query looks)."""

import re
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metrics import partitions
from metrics.models import Sample, Series

postgres_only = pytest.mark.skipif("not partitions.partitioned()", reason="partitions are PostgreSQL's")


def counter(ts, value=1.0, labels=None):
    return {"name": "jobs_total", "type": "counter", "labels": labels or {"q": "a"}, "timestamp": ts, "value": value}


@pytest.mark.django_db(transaction=True)  # the cache holds committed series only
def test_a_cached_series_that_is_gone_is_made_again_from_the_database(push, agent):
    assert push(agent, [counter(time.time(), 2)]).json()["accepted"] == 1
    Series.objects.filter(agent=agent).delete()  # behind the cache's back (and its samples with it)
    r = push(agent, [counter(time.time(), 3), counter(time.time(), 4, labels={"q": "b"})])
    assert r.status_code == 202 and r.json()["accepted"] == 2, r.json()
    assert sorted(Series.objects.filter(agent=agent).values_list("total", flat=True)) == [3.0, 4.0]
    assert Sample.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_cached_series_keep_their_type_and_totals(push, agent):
    now = time.time()
    push(agent, [counter(now, 1)])
    r = push(agent, [counter(now, 5), {**counter(now), "type": "gauge"}, counter(now, 1)])
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 1), body
    assert body["errors"] == [{"index": 1, "message": "metric jobs_total is a counter, not a gauge"}]
    assert Series.objects.get(agent=agent).total == 7.0


@postgres_only
@pytest.mark.django_db(transaction=True)  # a partition is attached in a transaction of its own
def test_a_batch_for_a_day_without_partition_makes_it(push, agent):
    ts = time.time() - 6 * 86400
    day = int(ts * 1000) // partitions.DAY_MS
    name = partitions.partition_days().get(day)
    if name is not None:
        partitions.partition_drop(day, name)
    partitions.forget()
    r = push(agent, [counter(ts), counter(time.time())])
    assert r.json()["accepted"] == 2, r.json()
    assert day in partitions.partition_days()
    assert Sample.objects.filter(ts__lt=(day + 1) * partitions.DAY_MS).count() == 1


@postgres_only
@pytest.mark.django_db
def test_a_query_reads_only_the_partitions_of_its_days(push, agent, viewer_client):
    now = int(time.time())
    push(agent, [counter(now - 3 * 86400), counter(now - 60)])
    with CaptureQueriesContext(connection) as queries:
        r = viewer_client.get(
            "/api/v1/metrics/query", {"name": "jobs_total", "start": now - 3600, "end": now, "step": 10}
        )
    assert r.status_code == 200 and r.json()["series"][0]["points"], r.json()
    reads = [query["sql"] for query in queries.captured_queries if '"metrics_sample"' in query["sql"]]
    assert reads
    today = partitions.partition_name(now * 1000 // partitions.DAY_MS)
    for sql in reads:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        scanned = set(re.findall(r" on (metrics_sample_p\d{8})", plan))
        assert scanned and scanned <= {today, partitions.partition_name(now * 1000 // partitions.DAY_MS - 1)}, plan


@postgres_only
@pytest.mark.django_db(transaction=True)  # migrations run outside a test's transaction
def test_the_migration_moves_an_existing_installs_samples_into_day_partitions(push, agent):
    from django.core.management import call_command

    now = time.time()
    push(agent, [counter(now - 2 * 86400, 2), counter(now, 3)])
    before = list(Sample.objects.order_by("ts").values_list("id", "ts", "value"))
    assert len(before) == 2
    call_command("migrate", "metrics", "0002", verbosity=0)  # back to one table, as an install before had it
    try:
        assert not partitions.partition_days()
        assert list(Sample.objects.order_by("ts").values_list("id", "ts", "value")) == before
    finally:
        call_command("migrate", "metrics", verbosity=0)
    days = partitions.partition_days()
    assert {ts // partitions.DAY_MS for _id, ts, _v in before} <= set(days)
    assert list(Sample.objects.order_by("ts").values_list("id", "ts", "value")) == before
    r = push(agent, [counter(now, 4)])  # ids go on after the moved ones
    assert r.json()["accepted"] == 1, r.json()
    assert Sample.objects.order_by("id").last().id > max(row[0] for row in before)
