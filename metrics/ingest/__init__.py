"""Metric sample ingestion: per-sample validation, idempotent batches, bulk storage.

Decoding and validating up to 10 000 samples is the hot path, so validation is plain Python
(the same rules a serializer would apply, with per-sample errors instead of failing the batch),
series are upserted with one query per batch rather than per sample, samples go to PostgreSQL
with COPY (bulk INSERT elsewhere) and series totals move with one UPDATE per touched series in
a single executemany.

By concern: `parse` (what a batch and each sample must be), `store` (which samples are accepted,
and writing them, their series, totals and rollups), `sql` (the raw SQL per database vendor).

    result = ingest(agent=agent, batch_id="b-1", samples=[...])  # Invalid when the batch is refused
    result.as_dict()  # {"accepted", "rejected", "errors": [{"index", "message"}], "duplicate"}
"""

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from metrics.ingest.parse import MAX_SAMPLES, BatchParser, InvalidSample, ParsedSample, check_batch
from metrics.ingest.sql import rollups_rebuild
from metrics.ingest.store import BIGINT_MAX, store
from metrics.models import MetricBatch

__all__ = ["BIGINT_MAX", "MAX_SAMPLES", "BatchParser", "IngestResult", "ingest", "rollups_rebuild"]


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


def ingest(*, agent, batch_id: str | None, samples) -> IngestResult:
    """Store a batch for an agent: each sample refused is an error with its index, the others are
    stored. A batch_id seen before stores nothing (also against a racing copy). Invalid when the
    batch itself is refused (not a list, too many samples, a malformed batch_id)."""
    check_batch(samples=samples, batch_id=batch_id)
    return _ingest(agent, batch_id, samples)


@transaction.atomic
def _ingest(agent, batch_id: str | None, samples: list) -> IngestResult:
    if batch_id is not None:
        try:
            with transaction.atomic():
                batch = MetricBatch.objects.create(agent_id=agent.pk, batch_id=batch_id)
        except IntegrityError:
            previous = MetricBatch.objects.filter(agent_id=agent.pk, batch_id=batch_id).first()
            return IngestResult(accepted=previous.accepted if previous else 0, duplicate=True)
    else:
        batch = None

    result = IngestResult()
    parser = BatchParser(timezone.now())
    parsed: list[ParsedSample] = []
    for index, raw in enumerate(samples):
        try:
            parsed.append(parser.parse(index, raw))
        except InvalidSample as exc:
            result.errors.append({"index": index, "message": str(exc)})

    accepted = store(agent, parsed, result.errors)
    result.accepted = len(accepted)
    result.rejected = len(samples) - result.accepted
    result.errors.sort(key=lambda error: error["index"])
    if batch is not None:
        MetricBatch.objects.filter(pk=batch.pk).update(accepted=result.accepted)
    return result
