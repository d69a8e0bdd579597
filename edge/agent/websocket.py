"""The agent's WebSocket, `/api/v1/edge/agents/{id}/ws` (API.md section 6).

One connection carries what would otherwise be a request every interval: `heartbeat` frames
answered `heartbeat.ack` with the HTTP answer's fields, `logs` frames answered `logs.ack`, and the
server's `stream.start` / `stream.stop` as they happen. Metric batches stay on HTTP (idempotent,
large). A frame the socket cannot carry raises NotCarried and goes over HTTP instead: while the
socket is not connected, for a frame over the server's 64 KiB, and for heartbeats on a server that
takes only stream instructions and lines on it (its answer to a heartbeat frame is an `error`
without `ref`).

After a connection is lost, every agent of a fleet hears of it at the same moment (a restarted
server drops them all), so the first reconnect waits a random time spread over RECONNECT_SPREAD
seconds and later ones full jitter over an exponential bound capped at RECONNECT_CAP: ten
thousand agents come back over a quarter of a minute, not in the same second.
"""

import itertools
import json
import logging
import random
import threading
from collections.abc import Callable

from edge.agent.client import RequestFailed, ServerUnavailable, backoff

logger = logging.getLogger("logfleet.agent")

RECONNECT_SPREAD = 15.0
RECONNECT_CAP = 30.0
ANSWER_TIMEOUT = 10.0
OPEN_TIMEOUT = 10.0
MAX_FRAME_BYTES = 64 * 1024  # the server closes the socket (4413) on a larger frame
ANSWERS = ("heartbeat.ack", "logs.ack", "ack", "error")  # "ack": a server from before logs.ack
# Close codes after which reconnecting cannot help: the key is refused or ended, or lacks edge:stream.
REFUSED = {4401: "the API key is refused or has ended", 4403: "the API key lacks edge:stream"}


class NotCarried(Exception):
    """The socket did not send the frame: send it over HTTP."""


def reconnect_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect attempt `attempt` (1, 2, ...) since the connection was lost
    or first failed: full jitter over RECONNECT_SPREAD, then twice that, at most RECONNECT_CAP."""
    return backoff(attempt - 1, cap=RECONNECT_CAP, base=RECONNECT_SPREAD, rng=rng)


def websocket_url(server: str, agent_id: str) -> str:
    url = server.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return f"{url}/api/v1/edge/agents/{agent_id}/ws"


class AgentSocket:
    """The connection, kept open by `run()` in a thread of its own; `request()` sends a frame from
    the agent's loop and waits for its answer. Server pushes go to `on_instruction`."""

    def __init__(
        self,
        *,
        server: str,
        api_key: str,
        agent_id: Callable[[], str | None],
        on_instruction: Callable[[dict], None],
        stop_event: threading.Event,
    ):
        self.server = server
        self.api_key = api_key
        self.agent_id = agent_id
        self.on_instruction = on_instruction
        self.stop_event = stop_event
        self._connection = None
        self._heartbeats = True  # False on a server that takes only stream instructions and lines
        self._refs = itertools.count(1)
        self._lock = threading.Lock()  # one frame in flight: the agent's loop sends one at a time
        self._answered = threading.Condition()
        self._waiting: str | None = None
        self._answer: dict | None = None

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def carries(self, kind: str) -> bool:
        """Whether a frame of `kind` goes over the socket at the moment (else over HTTP)."""
        return self._connection is not None and (kind != "heartbeat" or self._heartbeats)

    # --- the connection ------------------------------------------------------------------

    def run(self) -> None:
        try:
            from websockets.sync.client import connect
        except ImportError:
            logger.warning(
                "the websockets package is not installed: heartbeats and lines go over HTTP, and stream starts "
                "and stops arrive with the heartbeat instead of at once; pip install websockets to have them at once"
            )
            return
        attempt = 0
        while not self.stop_event.is_set():
            agent_id = self.agent_id()
            try:
                with connect(
                    websocket_url(self.server, agent_id),
                    additional_headers={"X-API-Key": self.api_key},
                    open_timeout=OPEN_TIMEOUT,
                ) as connection:
                    self._opened(connection, attempt)
                    attempt = 0
                    self._read(connection)
            except Exception as exc:  # any failure of the socket: HTTP meanwhile, and reconnect later
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                if code in REFUSED:
                    logger.error("the server closed the agent socket (%s: %s); using HTTP", code, REFUSED[code])
                    return
                if self._connection is not None or attempt == 0:
                    logger.warning("agent socket unavailable (%s); heartbeats and lines go over HTTP meanwhile", exc)
            finally:
                self._closed()
            attempt += 1
            delay = reconnect_delay(attempt)
            logger.debug("reconnecting the agent socket in %.1f s (attempt %d)", delay, attempt)
            self.stop_event.wait(delay)

    def _opened(self, connection, attempt: int) -> None:
        self._heartbeats = True
        self._connection = connection
        logger.info(
            "agent socket connected%s: heartbeats and lines go over it",
            f" after {attempt} attempt(s)" if attempt else "",
        )

    def _closed(self) -> None:
        self._connection = None
        with self._answered:
            self._answered.notify_all()

    def _read(self, connection) -> None:
        while not self.stop_event.is_set():
            try:
                message = json.loads(connection.recv(timeout=1))
            except TimeoutError:
                continue
            if not isinstance(message, dict):
                continue
            kind = message.get("type")
            if kind == "stream.start":
                self.on_instruction({**message, "action": "start"})
            elif kind == "stream.stop":
                self.on_instruction({"session_id": message.get("session_id"), "action": "stop"})
            elif kind in ANSWERS:
                with self._answered:
                    # An answer without `ref` is from a server that echoes none: it answers the frame in flight.
                    if self._waiting is not None and message.get("ref", self._waiting) == self._waiting:
                        self._answer = message
                        self._answered.notify_all()

    def close(self) -> None:
        connection = self._connection
        if connection is not None:
            connection.close()

    # --- frames --------------------------------------------------------------------------

    def request(self, kind: str, fields: dict, timeout: float = ANSWER_TIMEOUT) -> dict:
        """The answer to one frame. Raises NotCarried when the frame was not sent (send it over HTTP),
        ServerUnavailable (no answer, or 429/5xx) and RequestFailed (another 4xx), as the HTTP client."""
        if not self.carries(kind):
            raise NotCarried(kind)
        ref = f"{kind}-{next(self._refs)}"
        text = json.dumps({"type": kind, "ref": ref, **fields})
        if len(text.encode()) > MAX_FRAME_BYTES:
            raise NotCarried(f"{kind} frame over {MAX_FRAME_BYTES} bytes")
        with self._lock:
            connection = self._connection
            if connection is None:
                raise NotCarried(kind)
            with self._answered:
                self._waiting, self._answer = ref, None
            try:
                connection.send(text)
            except Exception as exc:
                raise NotCarried(f"the socket closed: {exc}") from None
            with self._answered:
                self._answered.wait_for(lambda: self._answer is not None or self._connection is None, timeout)
                answer, self._waiting, self._answer = self._answer, None, None
        if answer is None:
            if self._connection is not None:
                connection.close()  # no answer in time: the connection is stale; reconnect
            raise ServerUnavailable(f"the agent socket gave no answer to a {kind} frame")
        return self._answer_of(kind, answer)

    def _answer_of(self, kind: str, answer: dict) -> dict:
        if answer.get("type") != "error":
            return answer
        if kind == "heartbeat" and "ref" not in answer:
            # A server from before heartbeats on the socket ("unknown frame type"): HTTP for them.
            self._heartbeats = False
            logger.info("this server takes heartbeats over HTTP only; lines and stream instructions use the socket")
            raise NotCarried(kind)
        status = answer.get("status") or 400
        if status == 429 or status >= 500:
            retry_after = answer.get("retry_after")
            raise ServerUnavailable(
                f"the server answered {status} on the socket: {answer.get('message')}",
                float(retry_after) if retry_after else None,
                status,
            )
        raise RequestFailed(status, answer)


def pack_lines(lines: list[dict], budget: int = MAX_FRAME_BYTES - 1024) -> list[tuple[bool, list[dict]]]:
    """The lines in order as (over the socket?, lines) runs: socket runs of at most `budget` bytes of
    JSON, and each line too large for a frame alone in a run of its own for HTTP."""
    runs: list[tuple[bool, list[dict]]] = []
    size = 0
    for line in lines:
        cost = len(json.dumps(line).encode()) + 1
        if cost > budget:
            runs.append((False, [line]))
            size = 0
            continue
        if not runs or not runs[-1][0] or size + cost > budget:
            runs.append((True, []))
            size = 0
        runs[-1][1].append(line)
        size += cost
    return runs
