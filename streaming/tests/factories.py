from datetime import timedelta

import factory
from django.utils import timezone

from agents.tests.factories import AgentFactory
from streaming.models import StreamSession


class StreamSessionFactory(factory.django.DjangoModelFactory):
    """A session as stream_start stores one (pending, nobody watching yet), without telling the agent:
    for the reads, the sockets and the timers. Starting one for real is POST /stream/start."""

    class Meta:
        model = StreamSession

    agent = factory.SubFactory(AgentFactory)
    organization = factory.SelfAttribute("agent.organization")
    agent_ref = factory.SelfAttribute("agent.pk")
    timeout_seconds = 300
    # timezone.now looked up when called, so that a test's moved clock (conftest.clock) applies.
    started_at = factory.LazyFunction(lambda: timezone.now())
    expires_at = factory.LazyAttribute(lambda session: session.started_at + timedelta(seconds=session.timeout_seconds))
