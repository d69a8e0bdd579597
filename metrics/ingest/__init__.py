"""Metric sample ingestion: one-pass validation, idempotent batches, bulk storage.

Decoding and validating up to 10 000 samples is the hot path. One pass over the batch checks each
sample (the same rules a serializer would apply, with per-sample errors instead of failing the
batch), encodes its row for storage (binary COPY on PostgreSQL) and gathers its series' running
totals and per-minute rollups, so no Python object is made per sample. Series ids come from a
per-process cache of committed series (the database stays the truth), totals move with one UPDATE
for every touched series, and the samples go in with one COPY (bulk INSERT elsewhere). On
PostgreSQL the samples table is partitioned by day (metrics.partitions): the partitions a batch
needs exist before its transaction begins.

By concern: `parse` (what a batch and each sample must be, and the validation pass), `store`
(which series are accepted, and writing them, their totals and rollups), `sql` (the raw SQL per
database vendor).

    result = ingest(agent=agent, batch_id="b-1", samples=[...])  # Invalid when the batch is refused
    result.as_dict()  # {"accepted", "rejected", "errors": [{"index", "message"}], "duplicate"}
"""

import time
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from metrics import partitions
from metrics.ingest import sql
from metrics.ingest.parse import MAX_SAMPLES, Batch, Encoder, check_batch, validate_batch
from metrics.ingest.sql import rollups_rebuild
from metrics.ingest.store import BIGINT_MAX, StaleSeries, series_cache, store
from metrics.models import MetricBatch

__all__ = ["BIGINT_MAX", "MAX_SAMPLES", "AgentGone", "IngestResult", "ingest", "rollups_rebuild", "validate"]


class AgentGone(Exception):
    """The agent was deleted while its batch came in: nothing of the batch is stored."""


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    duplicate: bool = False

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": self.errors,
            "duplicate": self.duplicate,
        }


def validate(samples: list) -> Batch:
    """The validation pass over a batch's samples, encoded for the database in use."""
    return validate_batch(samples, timezone.now(), Encoder(binary=connection.vendor == "postgresql"))


def ingest(*, agent, batch_id: str | None, samples, timings: dict | None = None) -> IngestResult:
    """Store a batch for an agent: each sample refused is an error with its index, the others are
    stored. A batch_id seen before stores nothing (also against a racing copy). Invalid when the
    batch itself is refused (not a list, too many samples, a malformed batch_id), AgentGone when the
    agent was deleted meanwhile. `timings`, when
    given, adds the seconds spent per stage (validate, series, copy) to it."""
    check_batch(samples=samples, batch_id=batch_id)
    started = time.perf_counter()
    batch = validate(samples)
    if timings is not None:
        timings["validate"] = timings.get("validate", 0.0) + time.perf_counter() - started
    _partitions_ensure(batch)
    try:
        return _ingest(agent, batch_id, batch, samples, timings)
    except StaleSeries:
        # A series this process had cached is gone: the database decides, the batch from the start.
        series_cache.forget_agent(agent.pk)
        return _ingest(agent, batch_id, validate(samples), samples, timings, use_cache=False)
    except IntegrityError as exc:
        if not _no_partition(exc):
            raise
    # A partition this process knew was dropped since (a retention shorter than the 7 days a
    # sample may be late): made again, and the batch stored once more from the start.
    partitions.forget()
    batch = validate(samples)
    _partitions_ensure(batch)
    return _ingest(agent, batch_id, batch, samples, timings)


def _partitions_ensure(batch: Batch) -> None:
    if batch.groups:
        partitions.partitions_ensure(first_ms=batch.first_ms, last_ms=batch.last_ms)


def _no_partition(exc: IntegrityError) -> bool:
    return "no partition of relation" in str(exc)


@transaction.atomic
def _ingest(agent, batch_id: str | None, batch: Batch, samples: list, timings: dict | None, *, use_cache=True):
    if not sql.agent_hold(agent):
        raise AgentGone
    record = None
    if batch_id is not None:
        record = sql.batch_record(agent, batch_id)
        if record is None:
            previous = MetricBatch.objects.filter(agent_id=agent.pk, batch_id=batch_id).first()
            return IngestResult(accepted=previous.accepted if previous else 0, duplicate=True)
    store(agent, batch, use_cache=use_cache, timings=timings)
    result = IngestResult(accepted=batch.accepted, errors=sorted(batch.errors, key=lambda error: error["index"]))
    result.rejected = len(samples) - result.accepted
    if record is not None:
        MetricBatch.objects.filter(pk=record).update(accepted=result.accepted)
    return result
