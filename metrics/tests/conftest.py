import pytest
from rest_framework.test import APIClient

from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key


@pytest.fixture
def agent(org):
    return AgentFactory(organization=org, name="store-01", labels={"env": "prod"})


@pytest.fixture
def edge_client(org):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key(org)[1])
    return client


@pytest.fixture
def push(edge_client):
    def push_samples(agent, samples, batch_id=None, client=None):
        body = {"samples": samples}
        if batch_id is not None:
            body["batch_id"] = batch_id
        return (client or edge_client).post(f"/api/v1/edge/agents/{agent.pk}/metrics", body, format="json")

    return push_samples
