"""Schemathesis against the live OpenAPI schema of a running server (API.md sections 0 and 9).

Bounded (a fixed seed, a few examples per operation): no server errors, every response within
what the schema declares (status, content type, body), and no operation that ignores missing or
bad credentials. One pass as an admin (JWT), one with an edge key holding every permission.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from accounts.models import Role
from accounts.tests.factories import UserFactory
from apikeys.keys import PERMISSIONS
from apikeys.tests.factories import make_key
from bench.live import LiveServer
from conftest import client_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth"
ROOMY_LIMITS = {
    f"LOGFLEET_RATE_{group.upper()}": "1000000/m" for group in ("auth", "dashboard", "agents", "edge", "streaming")
}


def schemathesis(server: LiveServer, header: str, *selection: str) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{server.url}/api/v1/schema?format=json",
        "--header",
        header,
        "--checks",
        CHECKS,
        "--max-examples",
        "8",
        "--seed",
        "20261126",
        "--request-timeout",
        "20",
        "--no-color",
        *selection,
    ]
    # Run outside the checkout: Schemathesis keeps a cache (.schemathesis/) in its working directory.
    with tempfile.TemporaryDirectory() as workdir:
        return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600)


def test_the_api_honours_its_schema(org):
    token = client_for(UserFactory(organization=org, role=Role.ADMIN)).tokens.token
    raw_key = make_key(org, permissions=list(PERMISSIONS))[1]
    server = LiveServer(ROOMY_LIMITS, access_log=False)
    try:
        # Logging out or changing the password would end the run's own credentials; the caller, the only
        # active admin, cannot be deleted or demoted (the last-admin rule answers 409).
        people = schemathesis(
            server,
            f"Authorization: Bearer {token}",
            "--exclude-path-regex",
            r"/auth/(logout|change-password)|/edge/",
        )
        assert people.returncode == 0, people.stdout[-6000:]
        agents = schemathesis(server, f"X-API-Key: {raw_key}", "--include-path-regex", r"/edge/|/metrics/export")
        assert agents.returncode == 0, agents.stdout[-6000:]
        assert "unhandled error" not in server.output(full=True), server.output()
    finally:
        server.stop()
