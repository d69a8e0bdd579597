import pytest
from rest_framework.test import APIClient

from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key


@pytest.fixture
def online_agent(org):
    return AgentFactory(organization=org, name="store-01", online=True)


@pytest.fixture
def stream_key(org):
    return make_key(org)[1]


@pytest.fixture
def agent_client(stream_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=stream_key)
    return client


@pytest.fixture
def start(member_client):
    def start_session(agent, client=None, **body):
        return (client or member_client).post(
            "/api/v1/stream/start", {"agent_id": str(agent.pk), **body}, format="json"
        )

    return start_session


@pytest.fixture
def push_lines(agent_client):
    def push(agent, session_id, lines, client=None):
        return (client or agent_client).post(
            f"/api/v1/edge/agents/{agent.pk}/stream", {"session_id": str(session_id), "logs": lines}, format="json"
        )

    return push
