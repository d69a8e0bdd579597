"""The agent's main loop."""

import json
import logging
import os
import platform
import queue
import re
import shutil
import socket
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edge.agent.client import EdgeClient, RequestFailed, ServerUnavailable, backoff
from edge.agent.queue import DiskQueue
from edge.agent.tail import FileTailer, OffsetStore
from edge.agent.websocket import AgentSocket, NotCarried, pack_lines
from metrics import engine

logger = logging.getLogger("logfleet.agent")

VERSION = "1.0.0"
LEVEL_RE = re.compile(r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)\b", re.IGNORECASE)
STREAM_PUSH_EVERY = 0.25
MAX_STREAM_BATCH = 1000
MAX_STREAM_BUFFER = 5000
DEFAULT_HEARTBEAT_INTERVAL = 30.0
DEFAULT_METRICS_INTERVAL = 60.0
# Answers of 500 in a row for the same metric batch before it is set aside (see DiskQueue.hold).
MAX_BATCH_ERRORS = 3


@dataclass
class Options:
    server: str
    api_key: str
    name: str
    sources: dict[str, str]
    state_dir: Path
    labels: dict[str, str] = field(default_factory=dict)
    # None: not given locally, so the server's agent config decides (else these defaults). A value
    # given on the command line or in the environment wins over the server's (see `_interval`).
    heartbeat_interval: float | None = None
    metrics_interval: float | None = None
    queue_max_bytes: int = 50 * 1024 * 1024
    poll_interval: float = 0.2
    # Where log sources from the server's agent config may be (sources given on the command line
    # are the device owner's own choice and are not checked).
    allowed_paths: tuple[str, ...] = ("/var/log",)


@dataclass
class Session:
    id: str
    filters: dict
    expires_at: float
    buffer: list = field(default_factory=list)


def path_allowed(path: str, allowed: tuple[str, ...]) -> bool:
    """`path`, with symlinks and `..` resolved, is inside one of the `allowed` directories."""
    real = os.path.realpath(path)
    for directory in allowed:
        root = os.path.realpath(directory)
        if os.path.commonpath([real, root]) == root:
            return True
    return False


def host_metrics() -> dict:
    metrics = {}
    with suppress(OSError):
        metrics["cpu"] = round(min(100.0, os.getloadavg()[0] / (os.cpu_count() or 1) * 100), 1)
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        total = int(info["MemTotal"].split()[0])
        available = int(info["MemAvailable"].split()[0])
        metrics["memory"] = round((total - available) / total * 100, 1)
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        pass
    usage = shutil.disk_usage("/")
    metrics["disk"] = round(usage.used / usage.total * 100, 1)
    return metrics


def to_line(source: str, path: str, text: str, fmt: str) -> dict:
    level, message = "", text
    if fmt == "json":
        try:
            parsed = json.loads(text)
            if isinstance(parsed, dict):
                level = str(parsed.get("level") or parsed.get("severity") or "")
                message = str(parsed.get("message") or parsed.get("msg") or text)
        except ValueError:
            pass
    if not level:
        found = LEVEL_RE.search(text)
        level = found.group(1).upper() if found else ""
    return {
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "level": level,
        "message": message,
        "source": source,
        "metadata": {"path": path},
    }


def matches(filters: dict, line: dict) -> bool:
    levels = [level.lower() for level in filters.get("level") or []]
    if levels and line["level"].lower() not in levels:
        return False
    if filters.get("source") and line["source"] != filters["source"]:
        return False
    return not (filters.get("pattern") and filters["pattern"] not in line["message"])


class Agent:
    def __init__(self, options: Options):
        self.options = options
        self.client = EdgeClient(options.server, options.api_key)
        options.state_dir.mkdir(parents=True, exist_ok=True)
        self.offsets = OffsetStore(options.state_dir / "offsets.json")
        self.queue = DiskQueue(options.state_dir / "queue", options.queue_max_bytes)
        self.stop_event = threading.Event()
        self.agent_id: str | None = None
        self.sources = dict(options.sources)  # name -> path
        self.formats: dict[str, str] = {}
        self.tailers: dict[str, FileTailer] = {}
        self.extractor = engine.Extractor([])
        self.aggregator = engine.Aggregator()
        self.etag: str | None = None
        self.config_report: dict | None = None
        self.heartbeat_interval = options.heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL
        self.metrics_interval = options.metrics_interval or DEFAULT_METRICS_INTERVAL
        self.sessions: dict[str, Session] = {}
        self.instructions: queue.Queue = queue.Queue()
        # Heartbeats and live lines go over the socket while it is open, over HTTP otherwise.
        self.socket = AgentSocket(
            server=options.server,
            api_key=options.api_key,
            agent_id=lambda: self.agent_id,
            on_instruction=self.instructions.put,
            stop_event=self.stop_event,
        )
        self.next = {
            "heartbeat": 0.0,
            "sync": 0.0,
            "flush": time.monotonic() + self.metrics_interval,
            "send": 0.0,
            "stream": 0.0,
            "offsets": 0.0,
        }
        self.send_attempts = 0
        self.exit_code = 0  # what `python -m edge.agent` exits with
        self.failing_since: float | None = None  # when heartbeats started failing
        self._sync_tailers()

    # --- lifecycle -----------------------------------------------------------------------

    def run(self) -> None:
        self._register()
        if self.agent_id is None:
            return
        threading.Thread(target=self.socket.run, name="agent-websocket", daemon=True).start()
        while not self.stop_event.is_set():
            self.tick()
            self.stop_event.wait(self.options.poll_interval)
        self.shutdown()

    def shutdown(self) -> None:
        """Keep what this interval extracted (queued on disk) and where each file was read up to."""
        self._flush_metrics()
        deadline = time.monotonic() + 5
        while len(self.queue) and time.monotonic() < deadline and self._send_one():
            pass
        for tailer in self.tailers.values():
            tailer.close()
        self.offsets.save()
        self.socket.close()
        logger.info("stopped; %d metric batches wait in the queue", len(self.queue))

    def _register(self) -> None:
        attempt = 0
        while not self.stop_event.is_set():
            try:
                agent = self.client.register(
                    name=self.options.name,
                    hostname=socket.gethostname(),
                    os=f"{platform.system()} {platform.release()}",
                    version=VERSION,
                    labels=self.options.labels,
                )
                if self.agent_id not in (None, agent["id"]):
                    self.socket.close()  # it speaks for the agent it was opened for: reopen it for this one
                self.agent_id = agent["id"]
                logger.info("registered as %s (%s)", self.options.name, self.agent_id)
                return
            except ServerUnavailable as exc:
                wait = exc.retry_after or backoff(attempt)
                logger.warning("cannot register yet (%s); retrying in %.0f s", exc, wait)
            except RequestFailed as exc:
                # A refusal (a bad key, a host name the server does not serve, an invalid name, a
                # full organization) does not change by retrying: say why and stop.
                logger.error("registration refused for good, not retrying: %s", exc)
                self.exit_code = 2
                self.stop_event.set()
                return
            attempt += 1
            self.stop_event.wait(wait)

    # --- the loop ------------------------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        self._apply_instructions()
        for name, tailer in list(self.tailers.items()):
            for text in tailer.read_lines():
                self._process(name, text)
        if now >= self.next["heartbeat"]:
            self._heartbeat()
            self.next["heartbeat"] = now + self.heartbeat_interval
        if now >= self.next["sync"]:
            self._sync()
            self.next["sync"] = now + 60
        if now >= self.next["flush"]:
            self._flush_metrics()
            self.next["flush"] = now + self.metrics_interval
        if now >= self.next["send"] and len(self.queue):
            while self._send_one():
                pass
        if now >= self.next["stream"]:
            self._push_streams()
            self.next["stream"] = now + STREAM_PUSH_EVERY
        if now >= self.next["offsets"]:
            for tailer in self.tailers.values():
                tailer.remember()
            self.offsets.save()
            self.next["offsets"] = now + 5

    def _process(self, source: str, text: str) -> None:
        for match in self.extractor.process(text, source):
            self.aggregator.add(match)
        if self.sessions:
            line = to_line(source, self.sources.get(source, ""), text, self.formats.get(source, "text"))
            for session in self.sessions.values():
                if matches(session.filters, line) and len(session.buffer) < MAX_STREAM_BUFFER:
                    session.buffer.append(line)

    def _sync_tailers(self) -> None:
        for name, path in self.sources.items():
            current = self.tailers.get(name)
            if current is None or current.path != path:
                if current is not None:
                    current.close()
                self.tailers[name] = FileTailer(name, path, self.offsets)
                logger.info("tailing %s (%s)", path, name)
        for name in set(self.tailers) - set(self.sources):
            self.tailers.pop(name).close()

    # --- heartbeat and streams -----------------------------------------------------------

    def _heartbeat(self) -> None:
        body = {
            "status": "online",
            "version": VERSION,
            "metrics": host_metrics(),
            "sources": [tailer.report() for tailer in self.tailers.values()],
        }
        if self.config_report is not None:
            body["config_status"] = self.config_report
        try:
            answer = self._over_socket("heartbeat", body, lambda: self.client.heartbeat(self.agent_id, body))
        except ServerUnavailable as exc:
            logger.warning("heartbeat failed: %s", exc)
            self.failing_since = self.failing_since or time.monotonic()
            return
        except RequestFailed as exc:
            logger.error("heartbeat refused: %s", exc)
            self.failing_since = self.failing_since or time.monotonic()
            if exc.status == 404:
                self._register()
            return
        if self.failing_since is not None:
            logger.info("heartbeats acknowledged again after %.0f s", time.monotonic() - self.failing_since)
            self.failing_since = None
        if answer.get("config_hash") and answer["config_hash"] != (self.config_report or {}).get("hash"):
            self.next["sync"] = 0.0  # something changed: sync now
        for item in answer.get("streams", []):
            self.instructions.put(item)

    def _apply_instructions(self) -> None:
        while True:
            try:
                item = self.instructions.get_nowait()
            except queue.Empty:
                break
            session_id = item["session_id"]
            if item.get("action", "start") == "start" and session_id not in self.sessions:
                expires = datetime.fromisoformat(item["expires_at"]).timestamp()
                if expires > time.time():
                    self.sessions[session_id] = Session(session_id, item.get("filters") or {}, expires)
                    logger.info("streaming session %s started", session_id)
            elif item.get("action") == "stop" and self.sessions.pop(session_id, None):
                logger.info("streaming session %s stopped", session_id)
        for session_id in [s.id for s in self.sessions.values() if s.expires_at <= time.time()]:
            self.sessions.pop(session_id)
            logger.info("streaming session %s expired", session_id)

    def _push_streams(self) -> None:
        for session in list(self.sessions.values()):
            while session.buffer:
                batch, session.buffer = session.buffer[:MAX_STREAM_BATCH], session.buffer[MAX_STREAM_BATCH:]
                try:
                    self._push_lines(session.id, batch)
                except ServerUnavailable as exc:
                    logger.warning("could not stream lines (%s); dropping %d", exc, len(batch))
                    break
                except RequestFailed as exc:
                    logger.info("session %s is over (%s)", session.id, exc.status)
                    self.sessions.pop(session.id, None)
                    break

    def _push_lines(self, session_id: str, lines: list[dict]) -> None:
        """Over the socket in frames under its size limit (a line too large for one goes over HTTP)."""
        if not self.socket.carries("logs"):
            self.client.push_lines(self.agent_id, session_id, lines)
            return
        for over_socket, run in pack_lines(lines):

            def over_http(run=run):
                return self.client.push_lines(self.agent_id, session_id, run)

            if over_socket:
                self._over_socket("logs", {"session_id": session_id, "logs": run}, over_http)
            else:
                over_http()

    def _over_socket(self, kind: str, fields: dict, http):
        """One frame's answer over the socket, or the same request over HTTP when the socket does not
        carry it. Either way ServerUnavailable or RequestFailed say why it failed."""
        try:
            return self.socket.request(kind, fields)
        except NotCarried:
            return http()

    # --- metric configs and samples ------------------------------------------------------

    def _sync(self) -> None:
        try:
            status, body, etag = self.client.sync(self.agent_id, self.etag)
        except (ServerUnavailable, RequestFailed) as exc:
            logger.warning("config sync failed: %s", exc)
            return
        if status == 304:
            return
        self.etag = etag
        agent_config = body.get("agent_config") or {}
        self.heartbeat_interval = (
            self._interval("heartbeat", self.options.heartbeat_interval, agent_config.get("heartbeat_interval_seconds"))
            or self.heartbeat_interval
        )
        new_interval = (
            self._interval("metrics", self.options.metrics_interval, agent_config.get("metrics_interval_seconds"))
            or self.metrics_interval
        )
        if new_interval != self.metrics_interval:
            self.metrics_interval = new_interval
            self.next["flush"] = min(self.next["flush"], time.monotonic() + new_interval)
        errors = []
        server_sources = {}
        for source in agent_config.get("log_sources", []):
            if path_allowed(source["path"], self.options.allowed_paths):
                server_sources[source["name"]] = source["path"]
                self.formats[source["name"]] = source.get("format", "text")
            else:
                message = (
                    f"log source {source['name']}: {source['path']} is outside the paths this agent may read "
                    f"({', '.join(self.options.allowed_paths)}; see --allow-path)"
                )
                logger.error("%s: not tailed", message)
                errors.append({"message": message})
        # The server's sources replace the previous ones (a removed source stops being read); the
        # command line's win over a server source of the same name.
        self.sources = {**server_sources, **self.options.sources}
        self._sync_tailers()
        compiled = []
        for config in body.get("configs", []):
            rules = []
            for index, raw in enumerate(config.get("metrics", [])):
                _clean, rule, rule_errors = engine.validate_rule(raw, index)
                if rule is None:
                    errors += [
                        {"config_id": config["id"], "metric": str(raw.get("name", index)), "message": m}
                        for m in rule_errors.values()
                    ]
                else:
                    rules.append(rule)
            compiled.append(engine.CompiledConfig(config["id"], config.get("log_source", "*"), tuple(rules)))
        skipped, self.extractor = self.extractor.skipped, engine.Extractor(compiled)
        self.extractor.skipped = skipped  # the interval's count survives a new config
        self.config_report = {"hash": body["hash"], "state": "failed" if errors else "applied", "errors": errors}
        logger.info(
            "applied %d metric config(s) (hash %s)%s",
            len(compiled),
            body["hash"][:12],
            f", {len(errors)} rule error(s)" if errors else "",
        )
        self.next["heartbeat"] = 0.0  # report it

    def _flush_metrics(self) -> None:
        if self.extractor.skipped:
            logger.warning(
                "%d line(s) over %d bytes were not matched against the metric rules in this interval",
                self.extractor.skipped,
                engine.MAX_LINE_BYTES,
            )
            self.extractor.skipped = 0
        samples = self.aggregator.flush(round(time.time(), 3))
        if samples:
            self.queue.put({"batch_id": str(uuid.uuid4()), "samples": samples})
            self.next["send"] = 0.0

    def _interval(self, what: str, local: float | None, server: float | None) -> float | None:
        """The one precedence rule: a value given locally wins; otherwise the server's config decides."""
        if local is not None:
            if server is not None and server != local:
                logger.info("%s interval: %g s from the command line wins over the server's %g s", what, local, server)
            return local
        if server is not None and server != getattr(self, f"{what}_interval"):
            logger.info("%s interval: %g s from the server's agent config", what, server)
        return server

    def _send_one(self) -> bool:
        """Send the oldest queued batch; True when it left the queue."""
        item = self.queue.peek()
        if item is None or self.agent_id is None:
            return False
        path, batch = item
        try:
            result = self.client.push_metrics(self.agent_id, batch)
        except ServerUnavailable as exc:
            self.send_attempts += 1
            if exc.status == 500 and self.send_attempts >= MAX_BATCH_ERRORS:
                # An error of this batch, not of the server (which would say 502, 503, 504 or 429):
                # set it aside so the batches behind it are not blocked.
                held = self.queue.hold(path)
                logger.error(
                    "batch %s failed %d times with 500; set aside in %s",
                    batch.get("batch_id"),
                    self.send_attempts,
                    held,
                )
                self.send_attempts = 0
                return True
            wait = exc.retry_after or backoff(self.send_attempts)
            self.next["send"] = time.monotonic() + wait
            logger.warning("metrics not sent (%s); %d batch(es) queued, retrying in %.0f s", exc, len(self.queue), wait)
            return False
        except RequestFailed as exc:
            if exc.status == 404:
                self._register()
                return False
            if exc.status in (401, 403):
                # The key, not the batch: keep everything queued until the key is fixed.
                self.send_attempts += 1
                wait = backoff(self.send_attempts, cap=300.0)
                self.next["send"] = time.monotonic() + wait
                logger.error(
                    "the server refused the API key (%s); %d metric batch(es) stay queued on disk, retrying in %.0f s",
                    exc,
                    len(self.queue),
                    wait,
                )
                return False
            held = self.queue.hold(path)
            logger.error("batch %s refused (%s); set aside in %s", batch.get("batch_id"), exc, held)
            return True
        if self.send_attempts:
            logger.info("metrics sent again after %d failed attempt(s)", self.send_attempts)
        self.send_attempts = 0
        self.queue.remove(path)
        if result.get("rejected"):
            logger.warning(
                "batch %s: %d sample(s) rejected: %s",
                batch["batch_id"],
                result["rejected"],
                result.get("errors", [])[:3],
            )
        return True
