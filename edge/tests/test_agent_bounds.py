"""The reference agent under the extraction bounds, talking to the real Edge API in-process: a
line too long to match is skipped and counted in its log, captured values are pushed as
ingestion accepts them, and a stored rule over the bounds is reported, not run."""

import json
import logging
import time

import pytest
from rest_framework.test import APIClient

from apikeys.tests.factories import make_key
from edge.agent.agent import Agent, Options
from edge.agent.client import EdgeClient, RequestFailed, ServerUnavailable
from metrics import engine
from metrics.tests.helpers import NGINX_LINES, config_saved_before_the_bounds, nginx_example

pytestmark = pytest.mark.django_db

PATHS_RULE = {"name": "paths_total", "type": "counter", "pattern": r'"GET (\S+)', "labels": {"path": "$1"}}


class InProcessClient(EdgeClient):
    """The agent's client, with its requests answered by the Django test client instead of a socket."""

    def __init__(self, api_key: str):
        super().__init__("http://testserver", api_key)
        self.http = APIClient()

    def request(self, method, path, body=None, headers=None):
        extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in (headers or {}).items()}
        response = self.http.generic(
            method,
            f"/api/v1{path}",
            json.dumps(body) if body is not None else "",  # the bytes the real client sends
            content_type="application/json",
            HTTP_X_API_KEY=self.api_key,
            **extra,
        )
        payload = response.json() if response.content else {}
        if response.status_code == 429 or response.status_code >= 500:
            raise ServerUnavailable(f"server answered {response.status_code}")
        if response.status_code >= 400:
            raise RequestFailed(response.status_code, payload)
        return response.status_code, payload, dict(response.headers)


@pytest.fixture
def start_agent(org, tmp_path):
    log_file = tmp_path / "access.log"
    log_file.write_text("")

    def start() -> Agent:
        options = Options(
            server="http://testserver",
            api_key="",
            name="store-01",
            sources={"nginx": str(log_file)},
            state_dir=tmp_path,
        )
        agent = Agent(options)
        agent.client = InProcessClient(make_key(org)[1])
        agent._register()  # what run() does first
        agent.tick()  # heartbeat and config sync
        return agent

    start.log_file = log_file
    return start


def counted(client, name: str) -> float:
    end = int(time.time()) + 120
    body = client.get("/api/v1/metrics/query", {"name": name, "start": end - 7200, "end": end, "step": 3600}).json()
    return sum(value for series in body["series"] for _ts, value in series["points"])


def test_the_agent_skips_lines_too_long_to_match_and_pushes_values_ingestion_accepts(
    member_client, start_agent, caplog
):
    config = {**nginx_example(), "metrics": [*nginx_example()["metrics"], PATHS_RULE]}
    assert member_client.post("/api/v1/metric-configs", config, format="json").status_code == 201
    agent = start_agent()
    odd_path = "/a\x00" + "b" * 1000  # a NUL, and longer than a label value may be
    too_long = NGINX_LINES[1] + " " + "x" * engine.MAX_LINE_BYTES
    with start_agent.log_file.open("a") as handle:
        handle.write(f"{NGINX_LINES[0]}\n")
        handle.write(f'10.0.0.9 - - [x] "GET {odd_path} HTTP/1.1" 200 1 "-" "curl/8" request_time=0.010\n')
        handle.write(f"{too_long}\n")
    caplog.set_level(logging.INFO, logger="logfleet.agent")
    agent.tick()
    agent.shutdown()  # flushes the interval and sends it

    assert "1 line(s) over 16384 bytes were not matched" in caplog.text
    assert "rejected" not in caplog.text and "refused" not in caplog.text, caplog.text
    assert counted(member_client, "http_requests_total") == 2  # not the long line
    paths = member_client.get("/api/v1/metrics/series", {"name": "paths_total"}).json()["items"]
    expected = ("/a\ufffd" + "b" * 1000)[: engine.MAX_LABEL_VALUE_LENGTH]
    assert sorted(s["labels"]["path"] for s in paths) == sorted(["/index.html", expected])


def test_the_agent_reports_a_stored_rule_over_the_bounds_and_runs_the_others(org, member_client, start_agent, caplog):
    too_complex = {"name": "slow", "type": "counter", "pattern": "(.*)" * 600 + "$"}
    config_saved_before_the_bounds(organization=org, metrics=[*nginx_example()["metrics"], too_complex])
    caplog.set_level(logging.INFO, logger="logfleet.agent")
    agent = start_agent()
    assert "1 rule error(s)" in caplog.text
    assert agent.config_report["state"] == "failed"
    assert [(e["metric"], "too complex" in e["message"]) for e in agent.config_report["errors"]] == [("slow", True)]
    agent.tick()  # the heartbeat reports it
    assert member_client.get(f"/api/v1/agents/{agent.agent_id}").json()["config_status"] == "failed"
    with start_agent.log_file.open("a") as handle:
        handle.write(f"{NGINX_LINES[0]}\n")
    agent.tick()
    agent.shutdown()
    assert counted(member_client, "http_requests_total") == 1
    assert counted(member_client, "slow") == 0
