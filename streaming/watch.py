"""`python -m streaming.watch <websocket_url>`: print a stream session's lines as they arrive.

The access token comes from LOGFLEET_TOKEN (never from the command line, where `ps` would show it)
and is never printed. Control frames are shown in brackets; when the server closes the socket,
its code and reason are printed and the exit status is 0 for a normal end (1000), 1 otherwise.
Needs only the `websockets` package.
"""

import argparse
import asyncio
import json
import os
import sys
from urllib.parse import urlsplit

import websockets


def describe(frame: dict) -> str:
    if frame.get("type") == "log":
        fields = (frame.get("timestamp"), frame.get("level"), frame.get("source"), frame.get("message"))
        return f"{frame.get('seq')} " + " ".join(str(value) for value in fields if value is not None)
    details = ", ".join(f"{key}={value}" for key, value in frame.items() if key not in ("type", "event"))
    return f"[{frame.get('event', frame.get('type'))}{': ' + details if details else ''}]"


async def watch(url: str, token: str) -> int:
    try:
        async with websockets.connect(f"{url}?token={token}") as socket:
            async for message in socket:
                print(describe(json.loads(message)), flush=True)
    except websockets.ConnectionClosed:
        pass
    except (OSError, websockets.InvalidHandshake) as exc:
        print(f"[cannot connect to {url}: {exc}]", file=sys.stderr)
        return 1
    code, reason = socket.close_code, socket.close_reason
    print(f"[closed: {code} {reason}]".rstrip(), file=sys.stderr)
    return 0 if code == 1000 else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.watch", description=__doc__.split("\n")[0])
    parser.add_argument("websocket_url", help="the websocket_url that POST /api/v1/stream/start answered")
    args = parser.parse_args(argv)
    token = os.environ.get("LOGFLEET_TOKEN", "")
    if not token:
        parser.error("set LOGFLEET_TOKEN to an access token (POST /api/v1/auth/login)")
    if urlsplit(args.websocket_url).query:
        parser.error("give the websocket_url without a query string; the token comes from LOGFLEET_TOKEN")
    try:
        return asyncio.run(watch(args.websocket_url, token))
    except KeyboardInterrupt:
        print("[stopped watching]", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main())
