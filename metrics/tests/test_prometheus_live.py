"""A real Prometheus (Debian's `prometheus` and `promtool`) scraping a live LogFleet with an API key.

Prometheus runs the README's `scrape_configs` job (pointed at the live server, its key in a
credentials file) with a one-second scrape interval and its data in a temporary directory. The test
pushes samples through the Edge API in three steps and asks Prometheus' own API: the target is up,
the values are LogFleet's totals, `rate()` sees the increase and no reset, `histogram_quantile()`
answers what the buckets say (also after the histogram's bounds changed), and `promtool check
metrics` accepts the export.
"""

import json
import math
import re
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from django.conf import settings

from apikeys.tests.factories import make_key
from bench.live import LiveServer, free_port, http_json
from logfleet.testing import PROMETHEUS, PROMTOOL, prometheus_required

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SCRAPE_SECONDS = 1


@pytest.fixture
def binaries():
    missing = [str(path) for path in (PROMETHEUS, PROMTOOL) if not path.exists()]
    if missing:
        message = f"the Prometheus tests need Debian's prometheus package ({', '.join(missing)} missing)"
        if prometheus_required():
            pytest.fail(message)
        pytest.skip(message)


def readme_scrape_job() -> dict:
    """The scrape job of the README's prometheus.yml block, as a user copies it."""
    readme = (settings.BASE_DIR / "README.md").read_text()
    block = re.search(r"```yaml\n(# prometheus\.yml\n.*?)```", readme, re.DOTALL)
    assert block, "README.md has no prometheus.yml block"
    (job,) = yaml.safe_load(block.group(1))["scrape_configs"]
    return job


class Prometheus:
    """A Prometheus process scraping `job`, with its data in `directory`."""

    def __init__(self, job: dict, directory):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # One scrape a second (the default is a minute) so that the test takes seconds.
        config = {"global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": f"{SCRAPE_SECONDS}s"}}
        config["scrape_configs"] = [job]
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(directory / "prometheus.log", "w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, 30, "Prometheus to start", self.output)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.output()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def api(self, path: str, **params):
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list:
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        return self.api("query", **params)["result"]

    def value(self, promql: str, at: float | None = None) -> float:
        (result,) = self.query(promql, at)
        return float(result["value"][1])

    def points(self, selector: str, seconds: int = 60) -> list[tuple[float, float]]:
        """What Prometheus scraped of one series in the last `seconds`."""
        result = self.query(f"{selector}[{seconds}s]")
        if not result:
            return []
        (series,) = result
        return [(float(t), float(v)) for t, v in series["values"]]

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def wait_for(condition, timeout: float, what: str, describe=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f": {describe()}" if describe else ""))


def scraped_twice(prometheus: Prometheus, selector: str, value: float):
    """Wait until Prometheus holds at least two scrapes of `selector` at `value`."""

    def seen() -> bool:
        return sum(1 for _t, v in prometheus.points(selector) if v == value) >= 2

    wait_for(seen, 30, f"{selector} == {value}, scraped twice", lambda: prometheus.points(selector))


def histogram(buckets: dict, total: float) -> dict:
    return {
        "name": "request_duration_seconds",
        "type": "histogram",
        "labels": {},
        "timestamp": time.time(),
        "histogram": {"count": buckets["+Inf"], "sum": total, "buckets": buckets},
    }


def counter(value: float) -> dict:
    return {
        "name": "http_requests_total",
        "type": "counter",
        "labels": {"method": "GET"},
        "timestamp": time.time(),
        "value": value,
    }


def test_prometheus_scrapes_the_export_with_a_key_and_computes_rates_and_quantiles(binaries, org, tmp_path):
    _edge_key, edge_raw = make_key(org)
    _read_key, read_raw = make_key(org, name="prometheus", permissions=["metrics:read"])
    # Prometheus scrapes every second, in the Dashboard group's budget of the key (60 a minute).
    server = LiveServer({"LOGFLEET_RATE_DASHBOARD": "100000/m"}, access_log=False)
    prometheus = None
    try:
        edge = {"X-API-Key": edge_raw}
        status, agent = http_json(f"{server.url}/api/v1/edge/register", {"name": "store-01"}, edge)
        assert status == 201, agent
        push_url = f"{server.url}/api/v1/edge/agents/{agent['id']}/metrics"

        def push(*samples):
            status, body = http_json(push_url, {"samples": list(samples)}, edge)
            assert status == 202 and body["accepted"] == len(samples), body

        push(
            counter(100),
            {"name": "queue_depth", "type": "gauge", "labels": {}, "timestamp": time.time(), "value": 7},
            histogram({"0.1": 20, "0.5": 60, "1": 90, "+Inf": 100}, 40.0),
        )

        job = readme_scrape_job()
        assert job["metrics_path"] == "/api/v1/metrics/export" and job["authorization"]["type"] == "Bearer"
        key_file = tmp_path / "logfleet.key"
        key_file.write_text(read_raw + "\n")
        job.update(scheme="http", static_configs=[{"targets": [f"127.0.0.1:{server.port}"]}])
        job["authorization"]["credentials_file"] = str(key_file)
        prometheus = Prometheus(job, tmp_path)

        requests = 'http_requests_total{agent="store-01",method="GET"}'
        scraped_twice(prometheus, requests, 100)
        (target,) = prometheus.api("targets")["activeTargets"]
        assert target["health"] == "up" and target["lastError"] == "", target
        assert target["scrapeUrl"] == f"http://127.0.0.1:{server.port}/api/v1/metrics/export"
        assert prometheus.value('up{job="logfleet"}') == 1
        (series,) = prometheus.query(requests)
        assert series["metric"]["agent_id"] == agent["id"] and series["metric"]["job"] == "logfleet"
        assert prometheus.value("queue_depth") == 7
        assert prometheus.value("request_duration_seconds_count") == 100
        assert prometheus.value("request_duration_seconds_sum") == 40
        # rank 50 lies in (0.1, 0.5], which holds observations 21 to 60
        assert prometheus.value("histogram_quantile(0.5, request_duration_seconds_bucket)") == pytest.approx(0.4)

        # Step 2: 60 more requests, and 60 more observations with the same bounds.
        push(counter(60), histogram({"0.1": 0, "0.5": 10, "1": 50, "+Inf": 60}, 45.0))
        scraped_twice(prometheus, requests, 160)
        points = prometheus.points(requests)
        first, last = points[0][0], points[-1][0]
        window = math.ceil(last - first) + 1  # every point scraped so far
        assert prometheus.value(f"resets({requests}[{window}s])", at=last) == 0
        # rate() is the increase over the window, extrapolated from the scraped span to the window's
        # (Prometheus' documented behaviour): between 60 and 60 * window / span.
        increase = prometheus.value(f"rate({requests}[{window}s])", at=last) * window
        assert 60 <= increase <= 60 * window / (last - first) + 1e-9, (increase, points)
        # Over the window the buckets grew by 0, 10, 50 and 60: rank 30 lies in (0.5, 1].
        quantile = f"histogram_quantile(0.5, sum by (le) (rate(request_duration_seconds_bucket[{window}s])))"
        assert prometheus.value(quantile, at=last) == pytest.approx(0.75)

        # Step 3: the rule's bounds change (0.05 and +Inf only): the totals stay cumulative.
        push(histogram({"0.05": 30, "+Inf": 30}, 3.0))
        scraped_twice(prometheus, "request_duration_seconds_count", 190)
        buckets = sorted(
            (float(series["metric"]["le"]), float(series["value"][1]))
            for series in prometheus.query("request_duration_seconds_bucket")
        )
        assert buckets == [(0.05, 30), (0.1, 50), (0.5, 100), (1, 170), (math.inf, 190)]
        # rank 95 lies in (0.1, 0.5], which holds observations 51 to 100
        assert prometheus.value("histogram_quantile(0.5, request_duration_seconds_bucket)") == pytest.approx(0.46)

        request = urllib.request.Request(
            f"{server.url}/api/v1/metrics/export", headers={"Authorization": f"Bearer {read_raw}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            exported = response.read()
        checked = subprocess.run([str(PROMTOOL), "check", "metrics"], input=exported, capture_output=True, timeout=30)
        assert checked.returncode == 0 and not checked.stdout.strip(), (checked.stdout, checked.stderr, exported)
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.stop()
