"""A full disk under the upload folder: told apart from other errors, answered as a 503 the
person can act on, and seen by /readyz and /metrics before it happens.

Where an upload can meet it: the request body spooled into the folder (webapp/uploads.py, an
OSError from Werkzeug's form parser, not wrapped), the upload saved for ffmpeg or fetched from
a video_url (an OSError), ffmpeg writing its copy or encode (video.StorageFull, from its exit
code and stderr). Every one of them leaves nothing behind (the spool gives its space back when
a write fails, the upload's workspace and ffmpeg's folder are removed) and counts nothing (no
attempt exists yet, or verification deletes the one it started).

ENOSPC and EDQUOT (a quota) are the same thing to the person: the service cannot take a video
now; in a few minutes it may (a sweep, other uploads ending, an operator's clean-up).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from flask import Response, request
from sqlalchemy.engine import URL, make_url

from ..extensions import error_answer

FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
CODE = "storage_full"
RETRY_AFTER = 120  # seconds: a sweep runs every 30 s, a stuck upload is gone after max_age
MESSAGE = ("The service cannot take videos right now (its storage is full). Please try again in a "
           "few minutes; this try was not counted.")
MESSAGE_ZH = "服务暂时无法接收视频，请过几分钟再试。本次不计入次数。"
# The operator API's words (its caller is the operator's backend, not the person).
API_MESSAGE = ("The service's storage is full and it cannot take videos right now; try again in a "
               "few minutes. No attempt was used.")
API_MESSAGE_ZH = "服务的存储空间已满，暂时无法接收视频，请几分钟后重试；本次未使用任何次数。"


def is_full(error: BaseException) -> bool:
    """An OSError saying the disk (or the user's quota) is full."""
    return isinstance(error, OSError) and error.errno in FULL


def answer() -> Response:
    """The 503 with a Retry-After, in its asker's form (`extensions.error_answer`): words for the
    person on the page, the operator's own on the API."""
    response = error_answer(503, CODE, MESSAGE, MESSAGE_ZH, api=(CODE, API_MESSAGE, API_MESSAGE_ZH),
                            retry_after=RETRY_AFTER)
    _drain()
    return response


def _drain(limit: int = 1 << 30) -> None:
    """Read what is left of a request body whose spooling failed: a server that answers before
    the body is read and closes the connection makes the client's send fail (a broken pipe, a
    reset) before it can read the answer. Bounded by the request's own length limit."""
    try:
        stream = request.stream
        read = 0
        while read < limit:
            chunk = stream.read(1 << 16)
            if not chunk:
                return
            read += len(chunk)
    except Exception:  # the client went away, or the body was never readable: nothing to drain
        return


def free_bytes(folder: str | Path) -> int:
    """What an unprivileged writer may still put in `folder`'s filesystem."""
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def space_problem(folder: Path, min_free_mb: int, database_url: str | URL | None = None) -> str | None:
    """None while the upload folder (and a SQLite database's folder, when it is on another
    filesystem) has at least `min_free_mb` free; else why not (for /readyz). 0: no check."""
    if min_free_mb <= 0:
        return None
    places = [("upload folder", Path(folder))]
    if database_url is not None:
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            places.append(("database folder", Path(url.database).resolve().parent))
    problems, seen = [], set()
    for name, path in places:
        try:
            device = os.stat(path).st_dev
            if device in seen:
                continue
            seen.add(device)
            free = free_bytes(path)
        except OSError as exc:
            problems.append(f"{name} unreadable: {exc.strerror or exc}")
            continue
        if free < min_free_mb * 1024 * 1024:
            problems.append(f"{name} has {free / 1024 / 1024:.0f} MB free, under UPLOAD_MIN_FREE_MB "
                            f"({min_free_mb} MB)")
    return "; ".join(problems) or None
