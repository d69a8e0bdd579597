"""A viewer's frames on their way out: bounded, so that a viewer who stops reading costs a fixed
amount of memory.

The consumer puts frames in as they come from the channel layer and one writer task sends them,
waiting as long as the connection makes it wait (logfleet.websocket_server). Log lines that do
not fit in STREAM_VIEWER_QUEUE_BYTES are dropped and counted; the count goes out as one
`{"type":"control","event":"lines_dropped","count":N}` frame at the place of the gap, so a viewer
who reads again first gets what was kept, then how many lines it missed, then what came after.
Control frames (session_ending, session_ended and the close) are small and never dropped.
"""

import asyncio
import json
from collections import deque
from dataclasses import dataclass


@dataclass
class Item:
    text: str | None = None  # a frame
    dropped: int = 0  # a gap: lines that did not fit
    close: tuple[int, str] | None = None  # close with (code, reason) once everything before is sent
    size: int = 0  # bytes of `text` counted against the limit (log lines only)


class Outbox:
    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self.items: deque[Item] = deque()
        self.bytes = 0
        self.ready = asyncio.Event()

    def _append(self, item: Item) -> None:
        self.items.append(item)
        self.ready.set()

    def put_line(self, text: str) -> None:
        """A log frame; dropped and counted when it does not fit (an empty box always takes one)."""
        size = len(text)  # JSON frames are ASCII (json.dumps escapes the rest): characters are bytes
        if self.bytes and self.bytes + size > self.limit:
            self.put_dropped(1)
            return
        self.bytes += size
        self._append(Item(text=text, size=size))

    def put_dropped(self, count: int) -> None:
        """`count` lines missing here (dropped by the session's budget, or because the box was full)."""
        if not count:
            return
        if self.items and self.items[-1].dropped:
            self.items[-1].dropped += count
            return
        self._append(Item(dropped=count))

    def put_control(self, frame: dict) -> None:
        self._append(Item(text=json.dumps(frame)))

    def put_close(self, code: int, reason: str) -> None:
        self._append(Item(close=(code, reason)))

    def clear(self) -> None:
        self.items.clear()
        self.bytes = 0

    async def get(self) -> Item:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        item = self.items.popleft()
        self.bytes -= item.size
        if item.dropped:
            item.text = json.dumps({"type": "control", "event": "lines_dropped", "count": item.dropped})
        return item
