"""A small HTTP load generator for the benchmarks: stdlib only, no Django, run in its own process.

Bodies are encoded before the clock starts, so the client spends its time sending and waiting,
and the numbers measure the server.
"""

import http.client
import json
import multiprocessing
import threading
import time
from urllib.parse import urlsplit


def _worker(url: str, requests: list[tuple[str, str, bytes, dict]], duration: float, out: list, errors: list):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    deadline = time.monotonic() + duration
    index = 0
    while time.monotonic() < deadline:
        method, path, body, headers = requests[index % len(requests)]
        index += 1
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            continue
        out.append((time.perf_counter() - started, response.status, payload))
    connection.close()


def _run(url, requests_per_client, duration, queue):
    results, errors, threads = [], [], []
    for requests in requests_per_client:
        thread = threading.Thread(target=_worker, args=(url, requests, duration, results, errors))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    queue.put(([(latency, status, payload[:2000]) for latency, status, payload in results], errors[:20]))


def run(url: str, requests_per_client: list[list[tuple[str, str, bytes, dict]]], duration: float):
    """Run one thread per client list in a separate process; returns ([(latency, status, body)], errors)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run, args=(url, requests_per_client, duration, queue))
    process.start()
    results = queue.get(timeout=duration + 600)
    process.join(timeout=60)
    return results


def json_request(method: str, path: str, payload, headers: dict | None = None) -> tuple[str, str, bytes, dict]:
    body = json.dumps(payload).encode()
    return method, path, body, {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
