"""The agent's HTTP client for the Edge API (stdlib only)."""

import json
import random
import urllib.error
import urllib.request


class ServerUnavailable(Exception):
    """Unreachable, 5xx or 429: try again later (after `retry_after` seconds when the server says)."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status  # None when the server could not be reached


class RequestFailed(Exception):
    """A 4xx the agent cannot fix by retrying (bad key, unknown agent, a session that is over...)."""

    def __init__(self, status: int, body: dict):
        super().__init__(f"{status}: {body.get('error')}: {body.get('message')}")
        self.status = status
        self.body = body


class EdgeClient:
    def __init__(self, server: str, api_key: str, timeout: float = 15.0):
        self.server = server.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, dict, dict]:
        """(status, json body, headers); raises ServerUnavailable or RequestFailed."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (the server URL is the operator's)
            f"{self.server}/api/v1{path}",
            data=data,
            method=method,
            headers={
                "X-API-Key": self.api_key,
                "Content-Type": "application/json",
                "Accept": "application/json",
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
                return response.status, json.loads(raw) if raw else {}, dict(response.headers)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw) if raw else {}
            except ValueError:
                payload = {"error": "invalid_response", "message": raw[:200].decode(errors="replace")}
            if exc.code == 304:
                return 304, {}, dict(exc.headers)
            if exc.code == 429 or exc.code >= 500:
                retry_after = exc.headers.get("Retry-After")
                raise ServerUnavailable(
                    f"server answered {exc.code}", float(retry_after) if retry_after else None, exc.code
                ) from None
            raise RequestFailed(exc.code, payload) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise ServerUnavailable(f"{self.server} unreachable: {exc}") from None

    def register(self, *, name: str, hostname: str, os: str, version: str, labels: dict) -> dict:
        return self.request(
            "POST",
            "/edge/register",
            {"name": name, "hostname": hostname, "os": os, "version": version, "labels": labels},
        )[1]

    def heartbeat(self, agent_id: str, body: dict) -> dict:
        return self.request("POST", f"/edge/agents/{agent_id}/heartbeat", body)[1]

    def sync(self, agent_id: str, etag: str | None) -> tuple[int, dict, str | None]:
        headers = {"If-None-Match": etag} if etag else {}
        status, body, response_headers = self.request("GET", f"/edge/agents/{agent_id}/metric-config", headers=headers)
        return status, body, response_headers.get("ETag") or response_headers.get("Etag")

    def push_metrics(self, agent_id: str, batch: dict) -> dict:
        return self.request("POST", f"/edge/agents/{agent_id}/metrics", batch)[1]

    def push_lines(self, agent_id: str, session_id: str, lines: list[dict]) -> dict:
        return self.request("POST", f"/edge/agents/{agent_id}/stream", {"session_id": session_id, "logs": lines})[1]


def backoff(attempt: int, cap: float = 60.0, base: float = 1.0, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry `attempt` (0, 1, ...): uniform over [0, base * 2 ** attempt], at
    most `cap` ("full jitter"), so that agents that failed together do not retry together."""
    return (rng or random).uniform(0, min(cap, base * 2 ** min(attempt, 16)))
