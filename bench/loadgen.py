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
        out.append((time.perf_counter() - started, response.status, payload, path))
    connection.close()


def _run(url, requests_per_client, duration, queue):
    results, errors, threads = [], [], []
    for requests in requests_per_client:
        thread = threading.Thread(target=_worker, args=(url, requests, duration, results, errors))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    queue.put(([(latency, status, payload[:2000], path) for latency, status, payload, path in results], errors[:20]))


def run(url: str, requests_per_client: list[list[tuple[str, str, bytes, dict]]], duration: float):
    """Run one thread per client list in a separate process; returns ([(latency, status, body, path)], errors)."""
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


# --- streaming: viewers on WebSockets, an agent pushing lines over HTTP ---------------------


async def _stream_scenario(
    ws_url: str, viewers: int, push_url: str, headers: dict, session_id: str, rate: int, duration: float
) -> dict:
    import asyncio

    import websockets

    latencies: list[list[float]] = [[] for _ in range(viewers)]
    received = [0] * viewers
    dropped_notices = [0] * viewers

    async def watch(index: int, ready: asyncio.Event, done: asyncio.Event):
        async with websockets.connect(ws_url, max_size=2**22) as ws:
            await ws.recv()  # session_started
            ready.set()
            while not done.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                except websockets.ConnectionClosed:
                    return
                frame = json.loads(raw)
                if frame.get("type") == "log":
                    received[index] += 1
                    latencies[index].append(time.time() - float(frame["message"].split(" ", 1)[0]))
                elif frame.get("event") == "lines_dropped":
                    dropped_notices[index] += frame["count"]

    parts = urlsplit(push_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    done = asyncio.Event()
    readies = [asyncio.Event() for _ in range(viewers)]
    tasks = [asyncio.create_task(watch(i, readies[i], done)) for i in range(viewers)]
    await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), 30)

    batches_per_second = 20
    per_batch = max(1, rate // batches_per_second)
    pushed = accepted = dropped = 0
    started = time.monotonic()
    tick = 0
    while time.monotonic() - started < duration:
        now = time.time()
        lines = [
            {
                "timestamp": "2024-01-15T10:30:00Z",
                "level": "INFO",
                "source": "bench",
                "message": f"{now:.6f} line {pushed + i} of the benchmark stream",
                "metadata": {},
            }
            for i in range(per_batch)
        ]
        body = json.dumps({"session_id": session_id, "logs": lines}).encode()
        await asyncio.to_thread(
            connection.request, "POST", parts.path, body, {**headers, "Content-Type": "application/json"}
        )
        response = await asyncio.to_thread(connection.getresponse)
        result = json.loads(await asyncio.to_thread(response.read))
        pushed += per_batch
        accepted += result.get("accepted", 0)
        dropped += result.get("dropped", 0)
        tick += 1
        sleep = started + tick / batches_per_second - time.monotonic()
        if sleep > 0:
            await asyncio.sleep(sleep)
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)  # let the last frames arrive
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    connection.close()
    all_latencies = [value * 1000 for viewer in latencies for value in viewer]
    return {
        "pushed_per_second": pushed / elapsed,
        "accepted": accepted,
        "dropped": dropped,
        "delivered_per_second": sum(received) / elapsed,
        "lost_below_budget": max(0, accepted * viewers - sum(received)),
        "p50": percentile(all_latencies, 0.5),
        "p99": percentile(all_latencies, 0.99),
    }


def _stream_entry(args, queue):
    import asyncio

    queue.put(asyncio.run(_stream_scenario(*args)))


def run_stream_scenario(*args) -> dict:
    """Viewers and the pushing agent in a separate process; see _stream_scenario for the arguments."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_stream_entry, args=(args, queue))
    process.start()
    result = queue.get(timeout=600)
    process.join(timeout=60)
    return result
