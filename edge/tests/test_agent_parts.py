"""The agent's parts on their own: tailing, the disk queue, options, the log generator."""

import os
import random

import pytest

from edge.agent.agent import MAX_BATCH_ERRORS, Agent, Options, path_allowed
from edge.agent.cli import parse
from edge.agent.client import RequestFailed, ServerUnavailable
from edge.agent.loggen import line
from edge.agent.queue import DiskQueue
from edge.agent.tail import FileTailer, OffsetStore
from metrics import engine
from metrics.examples import nginx_example


def write(path, *lines):
    with open(path, "a") as handle:
        for text in lines:
            handle.write(text + "\n")


def test_first_run_starts_at_the_end_then_follows_appends(tmp_path):
    log = tmp_path / "app.log"
    write(log, "old 1", "old 2")
    tailer = FileTailer("app", str(log), OffsetStore(tmp_path / "offsets.json"))
    assert tailer.read_lines() == []
    write(log, "new 1")
    with open(log, "a") as handle:
        handle.write("partial")
    assert tailer.read_lines() == ["new 1"]
    with open(log, "a") as handle:
        handle.write(" line\n")
    assert tailer.read_lines() == ["partial line"]


def test_offsets_survive_a_restart(tmp_path):
    log, offsets_path = tmp_path / "app.log", tmp_path / "offsets.json"
    write(log, "before")
    offsets = OffsetStore(offsets_path)
    tailer = FileTailer("app", str(log), offsets)
    write(log, "one")
    assert tailer.read_lines() == ["one"]
    tailer.close()
    offsets.save()
    write(log, "while stopped")
    again = FileTailer("app", str(log), OffsetStore(offsets_path))
    assert again.read_lines() == ["while stopped"]


def test_rotation_and_truncation(tmp_path):
    log = tmp_path / "app.log"
    write(log, "x")
    tailer = FileTailer("app", str(log), OffsetStore(tmp_path / "offsets.json"))
    write(log, "last of the old file")
    os.rename(log, tmp_path / "app.log.1")
    write(log, "first of the new file")
    assert tailer.read_lines() == ["last of the old file", "first of the new file"]
    with open(log, "w") as handle:  # truncated in place
        handle.write("after truncation\n")
    assert tailer.read_lines() == ["after truncation"]


def test_a_missing_file_is_picked_up_when_it_appears(tmp_path):
    log = tmp_path / "later.log"
    tailer = FileTailer("later", str(log), OffsetStore(tmp_path / "offsets.json"))
    assert tailer.read_lines() == []
    write(log, "hello")
    assert tailer.read_lines() == ["hello"]


def test_the_disk_queue_keeps_order_and_drops_the_oldest_past_its_cap(tmp_path):
    queue = DiskQueue(tmp_path / "queue", max_bytes=300)
    for i in range(10):
        queue.put({"batch_id": f"b{i}", "samples": ["x" * 40]})
    assert 0 < len(queue) < 10 and queue.dropped == 10 - len(queue)
    seen = []
    while (item := queue.peek()) is not None:
        seen.append(item[1]["batch_id"])
        queue.remove(item[0])
    assert seen == [f"b{i}" for i in range(10 - len(seen), 10)]


def test_options_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOGFLEET_SERVER", "http://logfleet:8080")
    monkeypatch.setenv("LOGFLEET_API_KEY", "lf_prod_x")
    monkeypatch.setenv("LOGFLEET_AGENT_NAME", "pos-1")
    monkeypatch.setenv("LOGFLEET_SOURCES", "nginx=/var/log/nginx/access.log,app=/var/log/app.log")
    options, level = parse(["--state-dir", str(tmp_path), "--label", "site=berlin"])
    assert (options.server, options.api_key, options.name, level) == (
        "http://logfleet:8080",
        "lf_prod_x",
        "pos-1",
        "INFO",
    )
    assert options.sources == {"nginx": "/var/log/nginx/access.log", "app": "/var/log/app.log"}
    assert options.labels == {"site": "berlin"}
    with pytest.raises(SystemExit):
        parse(["--server", "x", "--api-key", "y", "--name", "z", "--source", "no-equals-sign"])


def test_generated_lines_feed_every_nginx_rule():
    _normalized, rules = engine.compile_rules(nginx_example()["metrics"])
    rng = random.Random(3)
    for _ in range(50):
        assert [m.metric for m in engine.match_line(rules, line(rng))] == [
            "http_requests_total",
            "http_responses_total",
            "request_duration_seconds",
        ]


def test_server_sources_must_be_inside_the_allowed_paths(tmp_path):
    allowed = tmp_path / "logs"
    allowed.mkdir()
    (allowed / "escape").symlink_to("/etc")
    assert path_allowed(str(allowed / "app.log"), (str(allowed),))
    assert path_allowed(str(allowed / "nginx" / "access.log"), (str(allowed),))
    for outside in ("/etc/shadow", f"{allowed}/../secret.log", f"{allowed}/escape/shadow", f"{allowed}x/a.log"):
        assert not path_allowed(outside, (str(allowed),)), outside


class FakeClient:
    """The agent's EdgeClient, answering what a test sets."""

    def __init__(self):
        self.sync_answer = None
        self.push_error = None
        self.pushed = []

    def sync(self, agent_id, etag):
        return 200, self.sync_answer, '"h"'

    def push_metrics(self, agent_id, batch):
        if self.push_error is not None:
            raise self.push_error
        self.pushed.append(batch["batch_id"])
        return {"accepted": len(batch["samples"]), "rejected": 0, "errors": []}


def agent_with_fake_client(tmp_path, **options):
    agent = Agent(Options(server="http://x", api_key="k", name="a", sources={}, state_dir=tmp_path / "s", **options))
    agent.client = FakeClient()
    agent.agent_id = "agent-1"
    return agent


def test_the_agent_refuses_and_reports_server_sources_outside_its_allowed_paths(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    agent = agent_with_fake_client(tmp_path, allowed_paths=(str(logs),))
    config = {"heartbeat_interval_seconds": 30, "metrics_interval_seconds": 60}
    agent.client.sync_answer = {
        "hash": "h1",
        "agent_config": {
            **config,
            "log_sources": [{"name": "app", "path": str(logs / "app.log")}, {"name": "shadow", "path": "/etc/shadow"}],
        },
        "configs": [],
    }
    agent._sync()
    assert set(agent.tailers) == {"app"}
    assert agent.config_report["state"] == "failed"
    assert ["/etc/shadow" in error["message"] for error in agent.config_report["errors"]] == [True]
    # A source removed from the server's config stops being read.
    agent.client.sync_answer = {"hash": "h2", "agent_config": {**config, "log_sources": []}, "configs": []}
    agent._sync()
    assert agent.tailers == {} and agent.config_report == {"hash": "h2", "state": "applied", "errors": []}


def test_a_batch_the_server_keeps_failing_is_set_aside_and_the_next_goes_on(tmp_path):
    agent = agent_with_fake_client(tmp_path)
    agent.queue.put({"batch_id": "poison", "samples": [{}]})
    agent.queue.put({"batch_id": "good", "samples": [{}]})
    agent.client.push_error = ServerUnavailable("server answered 500", status=500)
    for _ in range(MAX_BATCH_ERRORS - 1):
        assert agent._send_one() is False
        agent.next["send"] = 0.0
    assert agent._send_one() is True  # set aside, not deleted
    assert [p.name for p in (tmp_path / "s" / "queue" / "held").glob("*.json")] == ["000000000001.json"]
    agent.client.push_error = None
    assert agent._send_one() is True and agent.client.pushed == ["good"]


@pytest.mark.parametrize("status", [502, 503, 429])
def test_an_unavailable_server_never_costs_a_batch(tmp_path, status):
    agent = agent_with_fake_client(tmp_path)
    agent.queue.put({"batch_id": "b", "samples": [{}]})
    agent.client.push_error = ServerUnavailable(f"server answered {status}", status=status)
    for _ in range(MAX_BATCH_ERRORS + 2):
        assert agent._send_one() is False
    assert len(agent.queue) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_keeps_every_batch_on_disk(tmp_path, status):
    agent = agent_with_fake_client(tmp_path)
    agent.queue.put({"batch_id": "b", "samples": [{}]})
    agent.client.push_error = RequestFailed(status, {"error": "not_authenticated", "message": "Invalid key"})
    for _ in range(5):
        assert agent._send_one() is False
    assert len(agent.queue) == 1


def test_the_api_key_can_come_from_a_file_and_the_command_line_is_warned_about(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("LOGFLEET_API_KEY", raising=False)
    key_file = tmp_path / "key"
    key_file.write_text("lf_prod_fromfile\n")
    options, _ = parse(
        ["--server", "http://s", "--name", "n", "--api-key-file", str(key_file), "--state-dir", str(tmp_path)]
    )
    assert options.api_key == "lf_prod_fromfile" and "visible" not in caplog.text
    options, _ = parse(
        ["--server", "http://s", "--name", "n", "--api-key", "lf_prod_argv", "--state-dir", str(tmp_path)]
    )
    assert options.api_key == "lf_prod_argv" and "visible to every user of this host" in caplog.text


def test_a_local_interval_wins_over_the_servers_and_the_log_says_which_applies(tmp_path, caplog):
    caplog.set_level("INFO")
    server_config = {"heartbeat_interval_seconds": 15, "metrics_interval_seconds": 60, "log_sources": []}
    local = agent_with_fake_client(tmp_path / "local", metrics_interval=10)
    local.client.sync_answer = {"hash": "h", "agent_config": server_config, "configs": []}
    local._sync()
    assert (local.metrics_interval, local.heartbeat_interval) == (10, 15)
    assert "metrics interval: 10 s from the command line wins over the server's 60 s" in caplog.text
    assert "heartbeat interval: 15 s from the server's agent config" in caplog.text
    unset = agent_with_fake_client(tmp_path / "unset")
    unset.client.sync_answer = {
        "hash": "h",
        "agent_config": {**server_config, "metrics_interval_seconds": 120},
        "configs": [],
    }
    unset._sync()
    assert unset.metrics_interval == 120


def test_a_tailer_reports_a_missing_file_then_what_it_reads(tmp_path, caplog):
    log = tmp_path / "app.log"
    tailer = FileTailer("app", str(log), OffsetStore(tmp_path / "offsets.json"))
    assert tailer.report() == {
        "name": "app",
        "path": str(log),
        "state": "missing",
        "lines": 0,
        "bytes": 0,
        "error": "no such file",
    }
    assert "cannot read" in caplog.text  # a missing file is not silent
    write(log, "one", "two")
    assert tailer.read_lines() == ["one", "two"]
    assert tailer.report() == {"name": "app", "path": str(log), "state": "reading", "lines": 2, "bytes": 8}


def test_a_directory_in_place_of_a_file_is_an_error_state(tmp_path):
    (tmp_path / "app.log").mkdir()
    tailer = FileTailer("app", str(tmp_path / "app.log"), OffsetStore(tmp_path / "offsets.json"))
    assert tailer.report()["state"] == "error"
