import threading
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from metrics import partitions
from metrics.models import MetricBatch, Rollup, Sample, Series


def gauge(ts):
    return {"name": "g", "type": "gauge", "labels": {}, "timestamp": ts, "value": 1.0}


# As from cron, outside a test's transaction (PostgreSQL drops no partition that has rows written
# earlier in the same transaction).
@pytest.mark.django_db(transaction=True)
def test_prune_deletes_old_samples_in_chunks_and_keeps_totals(push, agent):
    now = time.time()
    push(agent, [gauge(now - 6 * 86400) for _ in range(5)] + [gauge(now - 60)])  # one old minute
    old_ms = int((now - 40 * 86400) * 1000)
    partitions.partitions_ensure(first_ms=old_ms, last_ms=old_ms)  # PostgreSQL: the day the samples move to
    Sample.objects.filter(ts__lt=(now - 5 * 86400) * 1000).update(ts=old_ms)
    Rollup.objects.filter(minute__lt=now - 5 * 86400).update(minute=int(now - 40 * 86400) // 60 * 60)
    out = StringIO()
    call_command("prune_metrics", "--dry-run", stdout=out)
    assert "Would delete 5 samples" in out.getvalue() and Sample.objects.count() == 6
    out = StringIO()
    call_command("prune_metrics", "--chunk-size", "2", stdout=out)
    # PostgreSQL drops the old day's partition at once; elsewhere the samples go two at a time.
    assert "Deleted 5 samples" in out.getvalue()
    assert ("1 day partition(s)" if partitions.partitioned() else "3 chunk(s)") in out.getvalue()
    assert Sample.objects.count() == 1 and Series.objects.get().last_value == 1.0
    assert list(Rollup.objects.values_list("count", flat=True)) == [1]  # the recent minute only
    call_command("prune_metrics", stdout=StringIO())  # safe to re-run
    assert Sample.objects.count() == 1
    with pytest.raises(CommandError, match="at least 1"):
        call_command("prune_metrics", "--older-than-days", "0", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_two_racing_copies_of_a_batch_store_it_once(org):
    agent = AgentFactory(organization=org)
    _key, raw = make_key(org)
    body = {
        "batch_id": "race-1",
        "samples": [
            {"name": "c", "type": "counter", "labels": {"n": str(i)}, "timestamp": time.time(), "value": 1}
            for i in range(200)
        ],
    }
    results, barrier = [], threading.Barrier(2)

    def send():
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=raw)
        barrier.wait()
        try:
            results.append(client.post(f"/api/v1/edge/agents/{agent.pk}/metrics", body, format="json").json())
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["duplicate"] for r in results) == [False, True], results
    assert Sample.objects.count() == 200 and MetricBatch.objects.count() == 1
    assert sum(Series.objects.values_list("total", flat=True)) == 200


@pytest.mark.django_db(transaction=True)
def test_an_agent_deleted_while_a_push_is_being_stored_takes_its_samples_with_it(org, member_client, monkeypatch):
    """Samples have no foreign key in the database: the deletion must wait for the push that holds
    the agent's row and delete what it stored."""
    from metrics.ingest import sql

    agent = AgentFactory(organization=org)
    _key, raw = make_key(org)
    written, go = threading.Event(), threading.Event()
    write_samples = sql.write_samples

    def write_then_wait(groups):  # holds the push's transaction open between its COPY and its commit
        write_samples(groups)
        written.set()
        go.wait(10)

    monkeypatch.setattr(sql, "write_samples", write_then_wait)
    statuses = {}

    def push():
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=raw)
        samples = [gauge(time.time()) | {"labels": {"n": str(i)}} for i in range(50)]
        try:
            statuses["push"] = client.post(
                f"/api/v1/edge/agents/{agent.pk}/metrics", {"samples": samples}, format="json"
            ).status_code
        finally:
            connection.close()

    def delete():
        try:
            statuses["delete"] = member_client.delete(f"/api/v1/agents/{agent.pk}").status_code
        finally:
            connection.close()

    pusher = threading.Thread(target=push)
    pusher.start()
    assert written.wait(10)
    deleter = threading.Thread(target=delete)
    deleter.start()
    deleter.join(0.5)
    assert deleter.is_alive()  # waiting for the push's transaction
    go.set()
    pusher.join(10)
    deleter.join(10)
    assert statuses == {"push": 202, "delete": 204}
    assert Series.objects.count() == 0
    assert Sample.objects.count() == 0
