"""The reference agent stands on its own (README: "Install the agent on an edge host").

`make agent-package` builds a wheel of edge/agent/ and metrics/engine/, nothing else of the
server, beside the wheels of its two pinned dependencies; installed from that folder alone into a
fresh venv, where Django cannot be imported, `logfleet-agent` registers with a live server, ships
metrics and streams lines. The engine is the agent's one import from the server's apps.
"""

import ast
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import websockets
from django.conf import settings

from accounts.models import Role
from accounts.tests.factories import UserFactory
from apikeys.tests.factories import make_key
from bench.live import LiveServer, http_json
from conftest import client_for
from edge.agent.loggen import line
from edge.tests.test_live_agent import requests_counted, wait_for
from metrics import engine
from metrics import services as metric_services
from metrics.examples import nginx_example

BASE_DIR = Path(settings.BASE_DIR)
AGENT_DIR = BASE_DIR / "edge" / "agent"
ENGINE_DIR = BASE_DIR / "metrics" / "engine"
# What the agent's third-party imports are called in the package's dependencies.
DISTRIBUTION_OF = {"re2": "google-re2", "websockets": "websockets"}


def repo_top_level_names() -> set[str]:
    packages = {path.parent.name for path in BASE_DIR.glob("*/__init__.py")}
    return packages | {path.stem for path in BASE_DIR.glob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Every module (or `module.name`) the file imports, relative imports resolved."""
    package = path.relative_to(BASE_DIR).parent.parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_the_engine_is_the_agents_one_import_from_the_server():
    repo, stdlib = repo_top_level_names(), set(sys.stdlib_module_names)
    into_server, third_party = set(), set()
    for path in [*sorted(AGENT_DIR.glob("*.py")), *sorted(ENGINE_DIR.glob("*.py"))]:
        inside = "metrics.engine." if path.is_relative_to(ENGINE_DIR) else "edge.agent."
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in repo:
                if not name.startswith(inside):
                    into_server.add((path.name, ".".join(name.split(".")[:2])))
            elif top not in stdlib:
                third_party.add(top)
    assert into_server == {("agent.py", "metrics.engine")}, "the agent (and the engine) import no other server code"
    assert third_party == set(DISTRIBUTION_OF)
    pinned = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {dependency.split("==")[0] for dependency in pinned} == set(DISTRIBUTION_OF.values())


def clean_env() -> dict[str, str]:
    """The environment of a host with nothing of this repository: no PYTHONPATH, no Django settings."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("PIP_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """The folder `make agent-package` fills."""
    dist = tmp_path_factory.mktemp("agent-package") / "dist"
    run(["make", "-s", "agent-package", f"AGENT_DIST={dist}"], cwd=BASE_DIR)
    return dist


@pytest.fixture(scope="module")
def agent_venv(package, tmp_path_factory) -> Path:
    """A fresh venv (outside the repository, seeing nothing of it) with the agent installed from `package` alone."""
    home = tmp_path_factory.mktemp("edge-host")
    run([sys.executable, "-m", "venv", str(home / "venv")], cwd=home, env=clean_env())
    pip = [str(home / "venv/bin/python"), "-m", "pip", "install", "--isolated", "--disable-pip-version-check", "-q"]
    run([*pip, "--no-index", "--find-links", str(package), "logfleet-agent"], cwd=home, env=clean_env())
    return home / "venv"


def test_the_wheel_holds_the_agent_and_the_engine_and_nothing_else_of_the_server(package):
    wheels = sorted(path.name.split("-")[0] for path in package.glob("*.whl"))
    assert wheels == ["google_re2", "logfleet_agent", "websockets"]
    (wheel,) = package.glob("logfleet_agent-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name.rsplit("/", 1)[0] for name in names if name.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    code = {name for name in names if not name.startswith(f"{info}/")}
    agent = {f"edge/agent/{path.name}" for path in AGENT_DIR.glob("*.py")}
    engine_files = {f"metrics/engine/{path.name}" for path in ENGINE_DIR.glob("*.py")}
    assert code == {"edge/__init__.py", "metrics/__init__.py", *engine_files, *agent}
    assert (BASE_DIR / "edge/__init__.py").read_text() == (BASE_DIR / "metrics/__init__.py").read_text() == ""

    # The dependencies are pinned, to the versions the server's own tests run (requirements.txt).
    requirements = {}
    for raw in (BASE_DIR / "requirements.txt").read_text().splitlines():
        requirement = raw.split("#")[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==")
            requirements[name.lower().replace("_", "-")] = version
    requires = metadata.get_all("Requires-Dist")
    assert sorted(requires) == sorted(f"{name}=={requirements[name]}" for name in DISTRIBUTION_OF.values())
    assert "logfleet-agent = edge.agent.cli:main" in entry_points


def test_the_installed_agent_runs_where_django_is_not(agent_venv):
    probe = (
        "import importlib.util, json, edge.agent.cli, metrics.engine; "
        "print(json.dumps({'engine': metrics.engine.__file__, 'present': [m for m in "
        "('django', 'rest_framework', 'logfleet', 'metrics.models', 'edge.views') if importlib.util.find_spec(m)]}))"
    )
    home = agent_venv.parent
    found = json.loads(run([str(agent_venv / "bin/python"), "-c", probe], cwd=home, env=clean_env()).stdout)
    assert found["present"] == []
    assert Path(found["engine"]).is_relative_to(agent_venv)

    usage = run([str(agent_venv / "bin/logfleet-agent"), "--help"], cwd=home, env=clean_env()).stdout
    assert usage.startswith("usage: logfleet-agent") and "--api-key-file" in usage
    usage = run([str(agent_venv / "bin/python"), "-m", "edge.agent", "--help"], cwd=home, env=clean_env()).stdout
    assert usage.startswith("usage: python -m edge.agent")


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_the_installed_agent_ships_metrics_and_streams_lines(agent_venv, org, tmp_path):
    user = UserFactory(organization=org, role=Role.ADMIN)
    token = client_for(user).tokens.token
    key_file = tmp_path / "api-key"
    key_file.write_text(make_key(org)[1] + "\n")
    key_file.chmod(0o600)
    example = nginx_example()
    normalized, _rules = engine.compile_rules(example["metrics"])
    metric_services.metric_config_create(organization=org, actor=user, **{**example, "metrics": normalized})
    log_file = tmp_path / "access.log"
    log_file.touch()

    server = LiveServer({"LOGFLEET_RATE_DASHBOARD": "100000/m"})
    agent_log = tmp_path / "agent.log"
    # A heartbeat a minute: a stream start can reach the agent in time only over its WebSocket
    # (the websockets dependency at work).
    command = [str(agent_venv / "bin/logfleet-agent"), "--server", server.url, "--name", "edge-01"]
    command += ["--api-key-file", str(key_file), "--source", f"nginx={log_file}", "--state-dir", str(tmp_path / "s")]
    command += ["--heartbeat-interval", "60", "--metrics-interval", "1"]
    with agent_log.open("w") as output:
        process = subprocess.Popen(command, cwd=tmp_path, env=clean_env(), stdout=output, stderr=subprocess.STDOUT)

    rng = random.Random(3)

    def append(count: int, text: str | None = None):
        with log_file.open("a") as handle:
            handle.writelines((text or line(rng)) + "\n" for _ in range(count))

    try:
        wait_for(
            lambda: "applied 1 metric config" in agent_log.read_text(), 30, "the config applied", agent_log.read_text
        )
        append(5)
        wait_for(lambda: requests_counted(server, token) == 5, 30, "5 requests counted", agent_log.read_text)

        status, started = http_json(
            f"{server.url}/api/v1/stream/start",
            {"agent_id": str(org.agents.get(name="edge-01").pk), "filters": {"pattern": "marker-7"}},
            {"Authorization": f"Bearer {token}"},
        )
        assert status == 201, started

        async def watch():
            async with websockets.connect(f"{started['websocket_url']}?token={token}") as ws:
                assert json.loads(await ws.recv())["event"] == "session_started"
                await asyncio.sleep(1.0)
                await asyncio.to_thread(append, 2, '10.0.0.9 - - [x] "GET /marker-7 HTTP/1.1" 200 1 request_time=0.1')
                frames = [json.loads(await asyncio.wait_for(ws.recv(), 15)) for _ in range(2)]
                assert all("marker-7" in frame["message"] for frame in frames), frames

        asyncio.run(watch())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=20) == 0, agent_log.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
            server.stop()
    assert "websockets package is not installed" not in agent_log.read_text()
