"""`tail -F` for the agent: follows appends, survives rotation and truncation, remembers offsets."""

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger("logfleet.agent.tail")

MAX_LINE = 1024 * 1024  # a "line" longer than this is cut (and the rest read as further lines)


class OffsetStore:
    """Where each file was read up to, in a small JSON file (written atomically)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.offsets = json.loads(path.read_text())
        except (OSError, ValueError):
            self.offsets = {}

    def get(self, name: str) -> dict | None:
        return self.offsets.get(name)

    def set(self, name: str, inode: int, offset: int) -> None:
        self.offsets[name] = {"inode": inode, "offset": offset}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.offsets))
        os.replace(tmp, self.path)


class FileTailer:
    """New complete lines of one file. On the first run it starts at the end of the file."""

    def __init__(self, source: str, path: str, offsets: OffsetStore):
        self.source, self.path, self.offsets = source, path, offsets
        self.handle = None
        self.inode = None
        self.partial = b""
        # What the heartbeat reports: reading, missing, permission_denied or error, and how much.
        self.state, self.error = "missing", None
        self.lines_read = self.bytes_read = 0
        self._open(first=True)

    def report(self) -> dict:
        report = {"name": self.source, "path": self.path, "state": self.state}
        report.update(lines=self.lines_read, bytes=self.bytes_read)
        if self.error:
            report["error"] = self.error
        return report

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self.state or error != self.error:
            if state == "reading":
                logger.info("reading %s (%s)", self.path, self.source)
            else:
                logger.warning("cannot read %s (%s): %s", self.path, self.source, error or state)
        self.state, self.error = state, error

    def _open(self, first: bool = False) -> None:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 (kept open while tailing)
        except FileNotFoundError:
            self.handle = None
            self._set_state("missing", "no such file")
            return
        except PermissionError:
            self.handle = None
            self._set_state("permission_denied", "permission denied")
            return
        except OSError as exc:
            self.handle = None
            self._set_state("error", str(exc)[:200])
            return
        self._set_state("reading")
        stat = os.fstat(handle.fileno())
        saved = self.offsets.get(self.source) if first else None
        if saved and saved.get("inode") == stat.st_ino and saved.get("offset", 0) <= stat.st_size:
            handle.seek(saved["offset"])  # resume where the last run stopped
        elif first and not saved:
            handle.seek(0, os.SEEK_END)  # a first run starts at the end
        # otherwise (a rotated file, or one that shrank): read it from the start
        self.handle, self.inode, self.partial = handle, stat.st_ino, b""

    def read_lines(self) -> list[str]:
        if self.handle is None:
            self._open()
            if self.handle is None:
                return []
        lines = self._drain()
        try:
            stat = os.stat(self.path)
        except OSError:
            return lines  # moved away and not recreated yet: keep reading the old file
        if stat.st_ino != self.inode:  # rotated: finish the old file, then follow the new one
            lines += self._drain()
            self.handle.close()
            logger.info("%s was rotated; following the new file", self.path)
            self._open()
            lines += self._drain() if self.handle else []
        elif stat.st_size < self.handle.tell():  # truncated in place
            logger.info("%s was truncated; reading from the start", self.path)
            self.handle.seek(0)
            self.partial = b""
            lines += self._drain()
        return lines

    def _drain(self) -> list[str]:
        if self.handle is None:
            return []
        chunk = self.handle.read()
        self.bytes_read += len(chunk)
        data = self.partial + chunk
        if not data:
            return []
        *complete, self.partial = data.split(b"\n")
        if len(self.partial) > MAX_LINE:
            complete.append(self.partial)
            self.partial = b""
        self.lines_read += len(complete)
        return [line.rstrip(b"\r").decode("utf-8", errors="replace") for line in complete]

    def remember(self) -> None:
        if self.handle is not None:
            self.offsets.set(self.source, self.inode, self.handle.tell() - len(self.partial))

    def close(self) -> None:
        self.remember()
        if self.handle is not None:
            self.handle.close()
