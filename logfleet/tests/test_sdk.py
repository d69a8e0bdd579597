"""A Python client generated from the live OpenAPI schema by `openapi-python-client` drives the main loop
against a running server: log in, list agents, create a key, register and heartbeat with that key, push
and query metrics (API.md sections 2 to 7).

The client is generated here, from the schema the server serves, into a temporary directory (no
network): the test fails if generation warns, or if a call the contract gives a body comes back
untyped (`Any`, `None`), errors included (each is the error envelope's model).
"""

import importlib
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.live import LiveServer, http_json

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PACKAGE = "log_fleet_api_client"
# No post-generation hooks (they would run a formatter from PATH): the output is the generator's own.
GENERATOR_CONFIG = "post_hooks: []\n"
# Statuses whose answer has no body, so an untyped `None` is right.
BODILESS = {"204", "304"}


def _generate(schema_text: str, workdir: Path) -> subprocess.CompletedProcess:
    (workdir / "schema.json").write_text(schema_text)
    (workdir / "config.yaml").write_text(GENERATOR_CONFIG)
    command = [
        str(Path(sys.executable).parent / "openapi-python-client"),
        "generate",
        "--path",
        "schema.json",
        "--meta",
        "none",
        "--config",
        "config.yaml",
        "--output-path",
        PACKAGE,
    ]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)


def _untyped_answers(package: Path) -> list[str]:
    """Every (operation, status) whose generated parser returns an untyped value for a status with a body."""
    found = []
    for module in sorted((package / "api").rglob("*.py")):
        source = module.read_text()
        for status in re.findall(r"status_code == (\d+):\s+response_\d+ = cast\(Any, None\)", source):
            if status not in BODILESS:
                found.append(f"{module.stem}: {status}")
    return found


@pytest.fixture
def sdk(tmp_path):
    """The generated package, imported; unloaded afterwards."""
    server = LiveServer(access_log=False)
    try:
        status, schema = http_json(f"{server.url}/api/v1/schema?format=json")
        assert status == 200, schema
        result = _generate(json.dumps(schema), tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        output = result.stdout + result.stderr
        assert "Warning" not in output and "Error" not in output, output
        assert _untyped_answers(tmp_path / PACKAGE) == []
        sys.path.insert(0, str(tmp_path))
        try:
            yield server, importlib.import_module(PACKAGE)
        finally:
            sys.path.remove(str(tmp_path))
            for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
                del sys.modules[name]
    finally:
        server.stop()


def test_a_generated_client_drives_the_main_loop(sdk):
    server, client_package = sdk
    api = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")

    def operation(group: str, name: str):
        return importlib.import_module(f"{api.__name__}.{group}.{name}")

    anonymous = client_package.Client(base_url=server.url, raise_on_unexpected_status=True)

    # Register (the run's own organization) and log in, both anonymous (the operations declare no
    # security); a wrong password and a taken email are the error envelope, typed.
    email, password = "ops@example.com", "a long and unusual passphrase"
    registered = operation("auth", "auth_register_create").sync(
        client=anonymous,
        body=models.RegisterRequest(organization_name="Acme", email=email, password=password, name="Ops"),
    )
    assert isinstance(registered, models.Session) and registered.user.role == "admin", registered
    again = operation("auth", "auth_register_create").sync(
        client=anonymous,
        body=models.RegisterRequest(organization_name="Acme 2", email=email, password=password, name="Ops"),
    )
    assert isinstance(again, models.Error) and again.error == "conflict", again
    login = operation("auth", "auth_login_create")
    refused = login.sync(client=anonymous, body=models.LoginRequest(email=email, password="not it"))
    assert isinstance(refused, models.Error) and refused.error == "authentication_failed", refused
    session = login.sync(client=anonymous, body=models.LoginRequest(email=email, password=password))
    assert isinstance(session, models.Session), session
    assert session.organization.id == registered.organization.id
    person = client_package.AuthenticatedClient(base_url=server.url, token=session.token)

    # List agents: none yet.
    agents = operation("agents", "agents_list").sync(client=person)
    assert isinstance(agents, models.PaginatedAgentList) and agents.total == 0 and agents.items == []

    # Create a key for an agent.
    created = operation("api_keys", "api_keys_create").sync(
        client=person,
        body=models.APIKeyCreateRequest(
            name="edge-01",
            permissions=[
                models.PermissionsEnum.EDGEREGISTER,
                models.PermissionsEnum.EDGEHEARTBEAT,
                models.PermissionsEnum.EDGEMETRICS,
            ],
        ),
    )
    assert isinstance(created, models.APIKeyCreated), created
    assert created.raw_key.startswith(created.api_key.key_prefix)
    agent_client = client_package.AuthenticatedClient(
        base_url=server.url, token=created.raw_key, prefix="", auth_header_name="X-API-Key"
    )

    # Register and heartbeat with that key.
    agent = operation("edge", "edge_register_create").sync(
        client=agent_client,
        body=models.AgentRegisterRequest(
            name="edge-01",
            hostname="edge-01.local",
            labels=models.AgentRegisterRequestLabels.from_dict({"site": "lab"}),
        ),
    )
    assert isinstance(agent, models.Agent) and agent.name == "edge-01", agent
    assert agent.labels.to_dict() == {"site": "lab"}
    beat = operation("edge", "edge_agents_heartbeat_create").sync(
        agent.id,
        client=agent_client,
        body=models.HeartbeatRequest(status=models.AgentStatusEnum.ONLINE, version="1.0.0"),
    )
    assert isinstance(beat, models.HeartbeatResponse), beat
    assert beat.config_hash == agent.config_hash and beat.streams == []
    listed = operation("agents", "agents_list").sync(client=person, status=models.AgentsListStatus.ONLINE)
    assert [item.id for item in listed.items] == [agent.id]

    # A person creating an agent whose name is taken: a conflict, in the envelope.
    taken = operation("agents", "agents_create").sync(client=person, body=models.AgentWriteRequest(name="edge-01"))
    assert isinstance(taken, models.Error) and taken.error == "conflict", taken

    # Push metrics and query them back.
    now = datetime.now(UTC).replace(microsecond=0)
    pushed = operation("edge", "edge_agents_metrics_create").sync(
        agent.id,
        client=agent_client,
        body=models.MetricsPushRequest(
            batch_id="batch-1",
            samples=[
                models.SampleRequest(
                    name="http_requests_total",
                    type_=models.MetricTypeEnum.COUNTER,
                    timestamp=now,
                    value=3.0,
                    labels=models.SampleRequestLabels.from_dict({"method": "GET"}),
                ),
                models.SampleRequest(
                    name="http_requests_total",
                    type_=models.MetricTypeEnum.COUNTER,
                    timestamp=now.timestamp(),
                    value=2.0,
                    labels=models.SampleRequestLabels.from_dict({"method": "GET"}),
                ),
            ],
        ),
    )
    assert isinstance(pushed, models.IngestResult), pushed
    assert (pushed.accepted, pushed.rejected, pushed.duplicate) == (2, 0, False), pushed
    answer = operation("metrics", "metrics_query_retrieve").sync(
        client=person, name="http_requests_total", group_by="method", step=3600
    )
    assert isinstance(answer, models.QueryResult), answer
    assert answer.type_ == "counter"
    [series] = answer.series
    assert isinstance(series, models.QuerySeries) and series.labels.to_dict() == {"method": "GET"}
    assert sum(value for _ts, value in series.points) == 5.0
