"""Metric configs (create/update/delete with optimistic locking), and the one check of their rules
that every path writing or trying rules calls. Ingestion is metrics.ingest."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.services import audit_record, organization_quota_check
from agents.labels import clean_labels
from agents.services import agents_refresh_config_hash
from logfleet.errors import Conflict, Invalid, NotFound, VersionConflict, version_check_room
from metrics import configs, engine, families
from metrics.models import MetricConfig

CONTENT_FIELDS = ("name", "description", "log_source", "enabled", "agent_selector", "metrics")


def _name_conflict() -> Conflict:
    return Conflict("A metric config with this name already exists", details={"name": "already used"})


def _hash(config: MetricConfig) -> str:
    return configs.config_hash(**{field: getattr(config, field) for field in CONTENT_FIELDS}, version=config.version)


def metric_rules_compile(*, metrics, message: str | None = None) -> tuple[list[dict], list[engine.Rule]]:
    """A config's rules as they are stored (normalized) and as they run (compiled), by the engine
    the agents run. The API's serializers, the admin, the rule test and every write call this one
    check; Invalid names each refused field, `metrics` for the list as a whole and
    `metrics.<index>.<field>` for a rule's (`metrics.0.pattern`), and two rules whose names would
    collide in the Prometheus export (metrics.families). Writes also call metric_rules_collision_check."""
    try:
        normalized, rules = engine.compile_rules(metrics)
    except engine.RuleError as exc:
        details = {f"metrics.{key}" if key else "metrics": problem for key, problem in exc.errors.items()}
        raise Invalid(message, details=details) from None
    collisions = {}
    for index, rule in enumerate(normalized):
        earlier = ((other["name"], other["type"], "in this config") for other in normalized[:index])
        problem = families.first_collision(rule["name"], rule["type"], earlier)
        if problem is not None:
            collisions[f"metrics.{index}.name"] = problem
    if collisions:
        raise Invalid(message, details=collisions)
    return normalized, rules


def metric_rules_collision_check(*, organization_id, metrics: list[dict], config_id=None) -> None:
    """Invalid (`metrics.<index>.name`) when a rule's family would take a name in the Prometheus export
    that a family of another of the organization's configs (`config_id` is the one being changed), or
    one its agents already push, takes: a histogram `lat` beside a counter `lat_count`, a counter `x`
    beside a gauge `x`. `metrics` are normalized rules (metric_rules_compile)."""
    in_configs: dict[str, list[tuple[str, str]]] = {}  # family name → (type, where)
    other_configs = MetricConfig.objects.filter(organization_id=organization_id).exclude(pk=config_id)
    for config_name, rules in other_configs.order_by("name", "id").values_list("name", "metrics"):
        for rule in rules:
            in_configs.setdefault(rule["name"], []).append((rule["type"], f"of the config {config_name}"))
    pushed = families.OrganizationFamilies(
        organization_id=organization_id, wanted={(rule["name"], rule["type"]) for rule in metrics}
    )
    problems = {}
    for index, rule in enumerate(metrics):
        name, kind = rule["name"], rule["type"]
        others = (
            (other_name, other_kind, where)
            for other_name in sorted(families.neighbours(name, kind))
            for other_kind, where in in_configs.get(other_name, ())
        )
        problem = families.first_collision(name, kind, others) or pushed.collision(name, kind)
        if problem is not None:
            problems[f"metrics.{index}.name"] = problem
    if problems:
        raise Invalid(details=problems)


def metric_config_quota_check(*, organization) -> None:
    """Conflict when the organization already has MAX_METRIC_CONFIGS_PER_ORG configs (locks it)."""
    organization_quota_check(
        organization_id=organization.pk,
        queryset=MetricConfig.objects.filter(organization=organization),
        limit=settings.MAX_METRIC_CONFIGS_PER_ORG,
        what="metric configs",
    )


def _selector_check(selector) -> dict:
    """An agent selector has the shape of agent labels, and their one rule (agents.labels)."""
    try:
        return clean_labels(selector or {})
    except Invalid as exc:
        raise exc.under("agent_selector") from None


@transaction.atomic
def metric_config_create(*, organization, actor, metrics, ip_address: str | None = None, **data) -> MetricConfig:
    """`metrics` is checked and stored normalized (labels as an object, every field present)."""
    metrics, _rules = metric_rules_compile(metrics=metrics)
    if "agent_selector" in data:
        data["agent_selector"] = _selector_check(data["agent_selector"])
    metric_config_quota_check(organization=organization)  # locks the organization for the collision check
    metric_rules_collision_check(organization_id=organization.pk, metrics=metrics)
    config = MetricConfig(organization=organization, created_by=actor, metrics=metrics, **data)
    config.hash = _hash(config)
    try:
        with transaction.atomic():
            config.save()
    except IntegrityError:
        raise _name_conflict() from None
    agents_refresh_config_hash(organization_id=organization.pk)
    audit_record(
        organization=organization,
        action="metric_config.created",
        actor=actor,
        ip_address=ip_address,
        target_type="metric_config",
        target_id=config.pk,
        metadata={"name": config.name},
    )
    return config


@transaction.atomic
def metric_config_update(
    *, config: MetricConfig, version: int, actor, ip_address: str | None = None, **changes
) -> MetricConfig:
    """Optimistic locking: `version` must be the current one; every change bumps it and the hash.
    Rules in `changes` are checked first: invalid ones are refused whatever the version."""
    if "metrics" in changes:
        changes["metrics"], _rules = metric_rules_compile(metrics=changes["metrics"])
    if "agent_selector" in changes:
        changes["agent_selector"] = _selector_check(changes["agent_selector"])
    if "metrics" in changes:  # the organization is locked while its rules are compared, as on create
        Organization.objects.select_for_update().filter(pk=config.organization_id).values_list("pk").first()
    locked = MetricConfig.objects.select_for_update().filter(pk=config.pk).first()
    if locked is None:  # deleted since the caller read it
        raise NotFound()
    if locked.version != version:
        raise VersionConflict(current_version=locked.version)
    version_check_room(version)
    if "metrics" in changes:
        metric_rules_collision_check(
            organization_id=locked.organization_id, metrics=changes["metrics"], config_id=locked.pk
        )
    for field, value in changes.items():
        setattr(locked, field, value)
    locked.version = version + 1
    locked.updated_at = timezone.now()
    locked.hash = _hash(locked)
    try:
        with transaction.atomic():
            locked.save()
    except IntegrityError:
        raise _name_conflict() from None
    agents_refresh_config_hash(organization_id=locked.organization_id)
    audit_record(
        organization=locked.organization,
        action="metric_config.updated",
        actor=actor,
        ip_address=ip_address,
        target_type="metric_config",
        target_id=locked.pk,
        metadata={"name": locked.name, "version": locked.version, "fields": sorted(changes)},
    )
    return locked


@transaction.atomic
def metric_config_delete(*, config: MetricConfig, actor, ip_address: str | None = None) -> None:
    organization_id = config.organization_id
    audit_record(
        organization=config.organization,
        action="metric_config.deleted",
        actor=actor,
        ip_address=ip_address,
        target_type="metric_config",
        target_id=config.pk,
        metadata={"name": config.name},
    )
    config.delete()
    agents_refresh_config_hash(organization_id=organization_id)
