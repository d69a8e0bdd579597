"""The agent's socket client on its own: how a fleet spreads its reconnects, how lines are packed
into frames, and what it makes of each answer, against a small WebSocket server that plays the
protocol's frames (the live tests run it against the real server)."""

import collections
import json
import random
import threading
import time

import pytest
from websockets.sync.server import serve

from edge.agent import websocket as agent_socket
from edge.agent.client import RequestFailed, ServerUnavailable
from edge.agent.websocket import MAX_FRAME_BYTES, AgentSocket, NotCarried, pack_lines, reconnect_delay

# --- a fleet's reconnects ------------------------------------------------------------------------


def test_ten_thousand_agents_dropped_together_reconnect_spread_over_fifteen_seconds():
    rng = random.Random(4)
    first = [reconnect_delay(1, rng) for _ in range(10_000)]
    assert min(first) >= 0 and max(first) <= agent_socket.RECONNECT_SPREAD
    per_second = collections.Counter(int(delay) for delay in first)
    assert len(per_second) == 15
    assert max(per_second.values()) < 800  # about 667 a second: no second takes a herd
    # Those that fail again spread over twice as long, and never wait past the cap.
    second = [reconnect_delay(2, rng) for _ in range(10_000)]
    assert max(second) <= agent_socket.RECONNECT_CAP and max(second) > agent_socket.RECONNECT_SPREAD
    assert max(collections.Counter(int(delay) for delay in second).values()) < 450
    assert max(reconnect_delay(40, rng) for _ in range(1000)) <= agent_socket.RECONNECT_CAP


# --- lines into frames ---------------------------------------------------------------------------


def log_line(message: str) -> dict:
    return {"timestamp": "2026-01-01T00:00:00Z", "level": "", "message": message, "source": "app", "metadata": {}}


def test_lines_are_packed_in_order_into_frames_under_the_limit_and_a_huge_line_goes_alone_over_http():
    lines = [log_line(f"{index:04} " + "x" * 3000) for index in range(60)]
    lines.insert(30, log_line("huge " + "y" * MAX_FRAME_BYTES))
    runs = pack_lines(lines)
    assert [line for _socket, run in runs for line in run] == lines  # every line, in order
    assert [over_socket for over_socket, _run in runs] == [True, True, False, True, True]
    assert runs[2][1] == [lines[30]]
    for over_socket, run in runs:
        frame = json.dumps({"type": "logs", "ref": "logs-1", "session_id": "x" * 36, "logs": run})
        assert not over_socket or len(frame.encode()) <= MAX_FRAME_BYTES


# --- answers -------------------------------------------------------------------------------------


class ScriptedServer:
    """A WebSocket server on a free port that answers each frame with `answer(frame)` (None: no answer)."""

    def __init__(self, answer, greeting=()):
        self.frames: list[dict] = []
        self.headers = []

        def handler(connection):
            self.headers.append(connection.request.headers.get("X-API-Key"))
            for frame in greeting:
                connection.send(json.dumps(frame))
            for text in connection:
                frame = json.loads(text)
                self.frames.append(frame)
                for reply in answer(frame) or ():
                    connection.send(json.dumps(reply))

        self.server = serve(handler, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.socket.getsockname()[1]}"

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def connect_socket():
    made = []

    def start(answer, greeting=()):
        server = ScriptedServer(answer, greeting)
        instructions = []
        stop = threading.Event()
        socket = AgentSocket(
            server=server.url,
            api_key="lf_test",
            agent_id=lambda: "a1",
            on_instruction=instructions.append,
            stop_event=stop,
        )
        thread = threading.Thread(target=socket.run, daemon=True)
        thread.start()
        made.append((server, stop, socket, thread))
        deadline = time.monotonic() + 10
        while not socket.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert socket.connected
        return socket, server, instructions

    yield start
    for server, stop, socket, thread in made:
        stop.set()
        socket.close()
        thread.join(5)
        server.stop()


def acknowledge(frame):
    if frame["type"] == "heartbeat":
        return [{"type": "heartbeat.ack", "ref": frame["ref"], "status": "acknowledged", "streams": []}]
    return [{"type": "logs.ack", "ref": frame["ref"], "session_id": frame["session_id"], "accepted": 1}]


def test_a_heartbeat_frame_gets_its_ack_and_stream_instructions_arrive_as_they_are_pushed(connect_socket):
    start = {"type": "stream.start", "session_id": "s1", "filters": {}, "expires_at": "2030-01-01T00:00:00Z"}
    socket, server, instructions = connect_socket(acknowledge, greeting=[start])
    answer = socket.request("heartbeat", {"status": "online", "version": "1.0.0"})
    assert answer["type"] == "heartbeat.ack" and answer["status"] == "acknowledged"
    assert server.frames == [{"type": "heartbeat", "ref": answer["ref"], "status": "online", "version": "1.0.0"}]
    assert server.headers == ["lf_test"]
    assert instructions == [{**start, "action": "start"}]
    assert socket.request("logs", {"session_id": "s1", "logs": [log_line("x")]})["accepted"] == 1


def test_an_answer_to_an_earlier_frame_is_not_taken_for_the_current_ones(connect_socket):
    def late_then_right(frame):
        return [{"type": "heartbeat.ack", "ref": "heartbeat-0", "status": "stale"}, *acknowledge(frame)]

    socket, _server, _instructions = connect_socket(late_then_right)
    assert socket.request("heartbeat", {"status": "online"})["status"] == "acknowledged"


def test_error_frames_raise_what_the_http_answer_would(connect_socket):
    def refuse(frame):
        if frame.get("status") == "busy":
            return [{"type": "error", "ref": frame["ref"], "status": 429, "error": "rate_limited", "retry_after": 7}]
        return [{"type": "error", "ref": frame["ref"], "status": 410, "error": "gone", "message": "over"}]

    socket, _server, _instructions = connect_socket(refuse)
    with pytest.raises(ServerUnavailable) as unavailable:
        socket.request("heartbeat", {"status": "busy"})
    assert (unavailable.value.status, unavailable.value.retry_after) == (429, 7.0)
    with pytest.raises(RequestFailed) as failed:
        socket.request("logs", {"session_id": "s1", "logs": []})
    assert failed.value.status == 410
    assert socket.connected  # error frames leave the socket open


def test_a_server_that_takes_no_heartbeats_on_its_socket_gets_them_over_http_and_lines_still_on_it(connect_socket):
    def before_heartbeats(frame):  # today's server: no ref in its answers, "ack" for lines
        if frame["type"] == "logs":
            return [{"type": "ack", "session_id": frame["session_id"], "accepted": 1}]
        return [{"type": "error", "status": 400, "message": "unknown frame type"}]

    socket, server, _instructions = connect_socket(before_heartbeats)
    with pytest.raises(NotCarried):
        socket.request("heartbeat", {"status": "online"})
    assert not socket.carries("heartbeat") and socket.carries("logs")
    with pytest.raises(NotCarried):
        socket.request("heartbeat", {"status": "online"})
    assert len(server.frames) == 1  # the second went nowhere: the caller sends it over HTTP
    assert socket.request("logs", {"session_id": "s1", "logs": []})["accepted"] == 1


def test_no_answer_in_time_drops_the_connection_and_the_next_frames_go_over_http(connect_socket):
    socket, _server, _instructions = connect_socket(lambda frame: None)
    with pytest.raises(ServerUnavailable):
        socket.request("heartbeat", {"status": "online"}, timeout=0.5)
    deadline = time.monotonic() + 5
    while socket.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not socket.connected
    with pytest.raises(NotCarried):
        socket.request("heartbeat", {"status": "online"})


def test_a_frame_over_the_limit_is_not_sent(connect_socket):
    socket, server, _instructions = connect_socket(acknowledge)
    with pytest.raises(NotCarried):
        socket.request("heartbeat", {"status": "online", "metrics": {"x": "y" * MAX_FRAME_BYTES}})
    assert server.frames == []
