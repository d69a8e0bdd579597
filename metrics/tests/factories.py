import factory

from accounts.tests.factories import OrganizationFactory
from agents import services as agent_services
from agents.tests.factories import AgentFactory
from metrics import configs, services
from metrics.ingest.parse import labels_hash
from metrics.models import MetricConfig, MetricType, Series

RULE = {"name": "hits_total", "type": "counter", "pattern": "GET"}


class MetricConfigFactory(factory.django.DjangoModelFactory):
    """A metric config stored as metric_config_create stores one: its rules normalized, its hash,
    and the agents of its organization told (their config hash) that what they run changed."""

    class Meta:
        model = MetricConfig
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"config-{n}")
    metrics = factory.LazyFunction(lambda: [dict(RULE)])

    @classmethod
    def _adjust_kwargs(cls, **kwargs):
        kwargs["metrics"], _rules = services.metric_rules_compile(metrics=kwargs["metrics"])
        config = MetricConfig(**kwargs)
        kwargs["hash"] = configs.config_hash(
            name=config.name,
            description=config.description,
            log_source=config.log_source,
            enabled=config.enabled,
            agent_selector=config.agent_selector,
            metrics=config.metrics,
            version=config.version,
        )
        return kwargs

    @factory.post_generation
    def agents_told(self, create, extracted, **kwargs):
        if create:
            agent_services.agents_refresh_config_hash(organization_id=self.organization_id)


class SeriesFactory(factory.django.DjangoModelFactory):
    """One series of an agent (its samples come from pushes: metrics.ingest)."""

    class Meta:
        model = Series

    agent = factory.SubFactory(AgentFactory)
    organization = factory.SelfAttribute("agent.organization")
    name = factory.Sequence(lambda n: f"metric_{n}_total")
    type = MetricType.COUNTER
    labels = factory.LazyFunction(dict)
    labels_hash = factory.LazyAttribute(lambda series: labels_hash(series.labels))
