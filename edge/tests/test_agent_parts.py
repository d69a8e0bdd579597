"""The agent's parts on their own: tailing, the disk queue, options, the log generator."""

import os
import random

import pytest

from edge.agent.cli import parse
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
            "http_response_status",
            "request_duration_seconds",
        ]
