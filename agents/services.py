"""Everything in agents that writes: CRUD, configuration, edge registration and heartbeats.

The rules of what is written are checked here, whoever calls (the API, the Edge API, the admin):
labels by agents.labels.clean_labels, a configuration by agents.config.clean_config.
"""

import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.services import audit_record, organization_quota_check
from agents import bundle, heartbeats
from agents import config as agent_config
from agents.labels import clean_labels
from agents.models import Agent, ConfigState
from logfleet.errors import Conflict, Invalid, VersionConflict, version_check_room

NAME_TAKEN = "An agent with this name already exists in the organization"


def _checked(field: str, rule, value):
    """`value` as its rule stores it; the rule's Invalid names the paths under `field`."""
    try:
        return rule(value)
    except Invalid as exc:
        raise exc.under(field) from None


def agent_quota_check(*, organization_id) -> None:
    """409 when the organization already has MAX_AGENTS_PER_ORG agents (inside the creating
    transaction: the organization stays locked until it commits)."""
    organization_quota_check(
        organization_id=organization_id,
        queryset=Agent.objects.filter(organization_id=organization_id),
        limit=settings.MAX_AGENTS_PER_ORG,
        what="agents",
    )


def _name_conflict() -> Conflict:
    return Conflict(NAME_TAKEN, details={"name": "already used by another agent"})


def agent_refresh_config_hash(*, agent: Agent, memo: dict | None = None) -> Agent:
    """Recompute what the agent should run and store its hash (one UPDATE when it changed)."""
    new_hash = bundle.bundle_hash(agent, memo)
    if new_hash != agent.config_hash:
        agent.config_hash = new_hash
        Agent.objects.filter(pk=agent.pk).update(config_hash=new_hash)
        heartbeats.identity_changed(agent.pk)
    return agent


def agents_refresh_config_hash(*, organization_id) -> int:
    """Recompute every agent of an organization (after a change that may concern any of them)."""
    changed, memo = 0, {}
    for agent in Agent.objects.filter(organization_id=organization_id):
        before = agent.config_hash
        if agent_refresh_config_hash(agent=agent, memo=memo).config_hash != before:
            changed += 1
    return changed


@transaction.atomic
def agent_create(
    *,
    organization: Organization,
    name: str,
    description: str = "",
    labels: dict | None = None,
    actor,
    ip_address: str | None = None,
) -> Agent:
    labels = _checked("labels", clean_labels, labels or {})
    agent_quota_check(organization_id=organization.pk)
    try:
        with transaction.atomic():
            agent = Agent.objects.create(organization=organization, name=name, description=description, labels=labels)
    except IntegrityError:
        raise _name_conflict() from None
    agent_refresh_config_hash(agent=agent)
    audit_record(
        organization=organization,
        action="agent.created",
        actor=actor,
        ip_address=ip_address,
        target_type="agent",
        target_id=agent.pk,
        metadata={"name": name},
    )
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, actor, ip_address: str | None = None, **changes) -> Agent:
    if "labels" in changes:
        changes["labels"] = _checked("labels", clean_labels, changes["labels"])
    changed = {field: value for field, value in changes.items() if getattr(agent, field) != value}
    if not changed:
        return agent
    for field, value in changed.items():
        setattr(agent, field, value)
    try:
        with transaction.atomic():
            agent.save(update_fields=[*changed, "updated_at"])
    except IntegrityError:
        raise _name_conflict() from None
    if "labels" in changed:  # which metric configs select the agent may have changed
        agent_refresh_config_hash(agent=agent)
    audit_record(
        organization=agent.organization,
        action="agent.updated",
        actor=actor,
        ip_address=ip_address,
        target_type="agent",
        target_id=agent.pk,
        metadata={"fields": sorted(changed)},
    )
    return agent


@transaction.atomic
def agent_delete(*, agent: Agent, actor, ip_address: str | None = None) -> None:
    audit_record(
        organization=agent.organization,
        action="agent.deleted",
        actor=actor,
        ip_address=ip_address,
        target_type="agent",
        target_id=agent.pk,
        metadata={"name": agent.name},
    )
    # Wait for the metric batches being stored for the agent, which hold its row until they commit
    # (metrics.ingest.sql.agent_hold), so that the cascade finds every series and sample they wrote
    # (samples have no foreign key in the database); a batch that comes later finds no agent.
    list(Agent.objects.select_for_update().filter(pk=agent.pk).values_list("pk"))
    agent.delete()


@transaction.atomic
def agent_config_update(*, agent: Agent, version: int, config: dict, actor, ip_address: str | None = None) -> Agent:
    """Optimistic locking: one conditional UPDATE on the version the client read. The config is
    stored as its rule leaves it (defaults filled in)."""
    config = _checked("config", agent_config.clean_config, config)
    version_check_room(version)
    now = timezone.now()
    updated = Agent.objects.filter(pk=agent.pk, config_version=version).update(
        config=config, config_version=version + 1, config_updated_at=now, updated_at=now
    )
    if not updated:
        current = Agent.objects.filter(pk=agent.pk).values_list("config_version", flat=True).first()
        raise VersionConflict(current_version=current)
    agent.refresh_from_db()
    agent_refresh_config_hash(agent=agent)
    audit_record(
        organization=agent.organization,
        action="agent_config.updated",
        actor=actor,
        ip_address=ip_address,
        target_type="agent",
        target_id=agent.pk,
        metadata={"version": agent.config_version, "hash": agent_config.content_hash(agent.config)},
    )
    return agent


# --- edge ----------------------------------------------------------------------------------


@transaction.atomic
def agent_register(
    *,
    organization_id,
    name: str,
    hostname: str,
    os: str,
    version: str,
    labels: dict,
    ip_address: str | None,
    key_id,
    actor_email: str,
) -> tuple[Agent, bool]:
    """Idempotent by name: (agent, created). An existing agent gets its hostname, os, version and
    address refreshed; its labels belong to the people managing the fleet and stay as they are."""
    labels = _checked("labels", clean_labels, labels)
    now = timezone.now()
    reported = {"hostname": hostname, "os": os, "version": version, "ip_address": ip_address}
    agent = Agent.objects.select_for_update().filter(organization_id=organization_id, name=name).first()
    created = agent is None
    if created:
        agent_quota_check(organization_id=organization_id)
        try:
            with transaction.atomic():
                agent = Agent.objects.create(
                    organization_id=organization_id,
                    name=name,
                    labels=labels,
                    registered_at=now,
                    registered_by_key_id=key_id,
                    **reported,
                )
        except IntegrityError:  # registered concurrently: take the winner's row
            agent = Agent.objects.select_for_update().get(organization_id=organization_id, name=name)
            created = False
        else:
            agent_refresh_config_hash(agent=agent)
    if not created:
        for field, value in reported.items():
            setattr(agent, field, value)
        agent.registered_at = agent.registered_at or now
        agent.registered_by_key_id = key_id
        agent.save(update_fields=[*reported, "registered_at", "registered_by_key", "updated_at"])
    audit_record(
        organization=agent.organization,
        action="agent.registered",
        actor_type="api_key",
        actor_id=key_id,
        actor_email=actor_email,
        ip_address=ip_address,
        target_type="agent",
        target_id=agent.pk,
        metadata={"name": name, "created": created},
    )
    return agent, created


def _heartbeat_values(
    *,
    status: str,
    ip_address: str | None,
    version: str | None = None,
    system_metrics: dict | None = None,
    config_report: dict | None = None,
    sources: list | None = None,
) -> dict:
    """The columns a heartbeat writes."""
    now = timezone.now()
    values: dict[str, object] = {
        "reported_status": status,
        "last_heartbeat_at": now,
        "updated_at": now,
        "ip_address": ip_address,
    }
    if version is not None:
        values["version"] = version
    if system_metrics is not None:
        values["system_metrics"] = system_metrics
    if sources is not None:
        values["source_states"] = sources
    if config_report is not None:
        values["config_report_hash"] = config_report["hash"]
        values["config_report_state"] = config_report["state"]
        values["config_errors"] = config_report.get("errors", [])
        if config_report["state"] == ConfigState.APPLIED:
            values["applied_config_hash"] = config_report["hash"]
    return values


def _identity_of(organization_id, agent_id) -> heartbeats.AgentIdentity | None:
    identity = heartbeats.agent_identity(agent_id)
    if identity is None or identity.organization_id != str(organization_id):
        return None
    return identity


def agent_heartbeat(*, organization_id, agent_id: uuid.UUID, **reported) -> str | None:
    """Acknowledge a heartbeat (`reported`: status, ip_address, version, system_metrics,
    config_report, sources): the agent's current config hash, or None when it is not an agent of
    the organization. It is committed before this returns, in a transaction shared with the
    heartbeats that arrived at the same time (agents.heartbeats)"""
    identity = _identity_of(organization_id, agent_id)
    if identity is None:
        return None
    heartbeats.writer.submit(agent_id, _heartbeat_values(**reported))
    return identity.config_hash


def agent_heartbeats(*, beats: list[dict]) -> list[str | None | Exception]:
    """Several heartbeats written in one transaction (those that arrived together on the agent
    sockets of a process), each a dict of agent_heartbeat's arguments. For each, in order: the
    agent's config hash, None when it is not an agent of the organization, or the error the
    database raised for its row. Committed before this returns."""
    results: list[str | None | Exception] = []
    rows: dict = {}
    for beat in beats:
        beat = dict(beat)
        organization_id, agent_id = beat.pop("organization_id"), beat.pop("agent_id")
        identity = _identity_of(organization_id, agent_id)
        if identity is None:
            results.append(None)
            continue
        rows.setdefault(agent_id, {}).update(_heartbeat_values(**beat))
        results.append(identity.config_hash)
    failures = heartbeats.write_batch(rows) if rows else {}
    return [
        failures.get(beat["agent_id"], result) if isinstance(result, str) else result
        for beat, result in zip(beats, results, strict=True)
    ]
