"""The agent's on-disk queue of metric batches: nothing is lost while the server is away.

Each batch is one JSON file named by a growing sequence number; batches leave the queue only
when the server acknowledged them (202). The queue is capped in bytes: past the cap the oldest
batches are dropped, and the count is logged.
"""

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger("logfleet.agent.queue")

MAX_HELD = 1000


class DiskQueue:
    def __init__(self, directory: Path, max_bytes: int):
        self.directory = directory
        self.max_bytes = max_bytes
        self.dropped = 0
        directory.mkdir(parents=True, exist_ok=True)

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"))

    def put(self, batch: dict) -> None:
        files = self._files()
        sequence = int(files[-1].stem) + 1 if files else 1
        tmp = self.directory / f"{sequence:012d}.tmp"
        tmp.write_text(json.dumps(batch))
        os.replace(tmp, self.directory / f"{sequence:012d}.json")
        self._enforce_cap()

    def _enforce_cap(self) -> None:
        files = self._files()
        total = sum(f.stat().st_size for f in files)
        while files and total > self.max_bytes:
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink()
            self.dropped += 1
            logger.warning(
                "metric queue over %d bytes: dropped the oldest batch (%d dropped so far)", self.max_bytes, self.dropped
            )

    def peek(self) -> tuple[Path, dict] | None:
        for path in self._files():
            try:
                return path, json.loads(path.read_text())
            except (OSError, ValueError):
                logger.error("unreadable queued batch %s: discarded", path.name)
                path.unlink(missing_ok=True)
        return None

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def hold(self, path: Path) -> Path:
        """Set a batch the server keeps refusing aside in `held/`, so the batches behind it go on.

        Nothing is deleted: an operator can inspect the file and put it back in the queue. At most
        MAX_HELD batches are kept there (the oldest go first, logged)."""
        held = self.directory / "held"
        held.mkdir(exist_ok=True)
        target = held / path.name
        os.replace(path, target)
        kept = sorted(held.glob("*.json"))
        for oldest in kept[: max(0, len(kept) - MAX_HELD)]:
            oldest.unlink(missing_ok=True)
            logger.warning("more than %d held batches: dropped the oldest, %s", MAX_HELD, oldest.name)
        return target

    def __len__(self) -> int:
        return len(self._files())
