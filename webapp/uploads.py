"""Where uploaded videos live while they are verified: one private folder, swept.

Every upload gets its own folder under UPLOAD_DIR (in the instance folder by default), named by
the host and process that handle it. The request removes its folder when it ends; a process
that died cannot, so start-up and the background loop sweep folders whose process is gone, and
anything older than the longest a request can take. No video outlives its request by more than
a sweep interval, even after a crash. Request bodies the web server spools to disk go to the same
folder as unnamed files (gone when closed, or when the process dies).
"""
from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)
HOST = socket.gethostname().replace("-", "_")[:40]


def max_age(settings) -> float:
    """The longest a request can hold its upload (seconds): ffmpeg's budget, Juhe's, a margin.
    An upload older than this belongs to no live request. `settings`: a webapp.settings.Settings."""
    return settings.FFMPEG_TIMEOUT + settings.JUHE_CONNECT_TIMEOUT * 3 + settings.JUHE_READ_TIMEOUT + 60


def prepare_dir(path: str | Path) -> Path:
    """Create the upload folder, private to this user."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def from_file(file: Any) -> Callable[[Path], None]:
    """How a received file (werkzeug's FileStorage, or anything with `save` and `close`) is
    written into an upload's folder: saved to the path, then closed."""
    def save(path: Path) -> None:
        try:
            file.save(path)
        finally:
            file.close()
    return save


@contextmanager
def workspace(folder: Path) -> Iterator[Path]:
    """A folder for one upload, removed when the block ends."""
    path = Path(tempfile.mkdtemp(prefix=f"{HOST}-{os.getpid()}-", dir=folder))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def spool_file(folder: Path) -> IO[bytes]:
    """An unnamed temporary file in the upload folder (for a request body being received).
    When a write fails (a full disk) it gives its space back at once, closed before the
    error goes on (webapp/web/full_disk.py answers it)."""
    return _Spool(tempfile.TemporaryFile("wb+", buffering=0, dir=folder))


class _Spool(io.BufferedRandom):
    def write(self, data, /) -> int:
        try:
            return super().write(data)
        except OSError:
            # The file descriptor itself: closing the buffer would try to write what it holds first.
            self.raw.close()  # (unnamed: its space is free now)
            raise


def sweep(folder: Path, max_age: float, now: float | None = None) -> int:
    """Remove what no live request owns: entries of processes of this host that are gone, and
    anything older than `max_age` seconds. Returns how many entries were removed."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if age > max_age or _owner_gone(entry.name):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d leftover upload(s) from %s", removed, folder)
    return removed


def _owner_gone(name: str) -> bool:
    host, _, rest = name.partition("-")
    pid = rest.partition("-")[0]
    if host != HOST or not pid.isascii() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
