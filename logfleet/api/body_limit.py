"""Request bodies are bounded at the ASGI layer, before Django reads them.

Django's ASGI handler reads the whole body (into memory or a temporary file) before any
middleware runs, so a check in Django would wait for a declared 100 MiB upload to arrive. Here
a `Content-Length` over the limit is answered 413 at once, without reading the body, and a body
that arrives without a length (chunked) is counted as it streams and cut off at the limit.
Limits: 1 MiB in general, 5 MiB for the edge pushes of metric samples and stream lines.
"""

import json
import re

from django.conf import settings

from logfleet.api.exceptions import error_body

_EDGE_PUSH_PATH = re.compile(r"^/api/v1/edge/agents/[^/]+/(metrics|stream)\Z")


class _TooLarge(Exception):
    pass


def body_limit(path: str) -> int:
    return settings.MAX_EDGE_PUSH_BODY_BYTES if _EDGE_PUSH_PATH.match(path) else settings.MAX_BODY_BYTES


class BodyLimitMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope["path"])
        declared = [value for name, value in scope.get("headers", []) if name.lower() == b"content-length"]
        if declared:
            if len(declared) > 1 or not declared[0].strip().isdigit():
                return await _answer(send, 400, error="parse_error", message="Invalid Content-Length header")
            if int(declared[0]) > limit:
                return await _answer(send, 413, details={"max_bytes": limit})

        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _answer(send, 413, details={"max_bytes": limit})


async def _answer(send, status: int, **kwargs) -> None:
    body = json.dumps(error_body(status, **kwargs)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
