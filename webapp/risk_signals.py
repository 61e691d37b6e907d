"""Risk signals on an attempt: what the page and the server noticed that may deserve a second look.
Signals, never a verdict: each has innocent causes (docs/risk-signals.md says which), and none
changes what is sent to Juhe or what the person is told.

Flask-free. The page sends what it saw with the upload (the `signals` form field, a JSON list of
{"code", "detail"}), read here against a closed vocabulary; the server adds what only it can see
(another browser family or OS than the session's earlier attempts).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable

MAX_BYTES = 1024
# Seen by the page (capture.js signals()):
VIRTUAL_CAMERA = "virtual_camera"    # the camera's label names virtual-camera or screen software
LOW_RESOLUTION = "low_resolution"    # delivered far below the asked size (detail: "WxH")
LOW_FRAME_RATE = "low_frame_rate"    # delivered far below the asked rate (detail: frames a second)
PAGE_HIDDEN = "page_hidden"          # the page was hidden between the camera opening and the upload
CAMERA_SWITCHED = "camera_switched"  # the recording's camera track ended, was muted or changed device
PAGE_SIGNALS = (VIRTUAL_CAMERA, LOW_RESOLUTION, LOW_FRAME_RATE, PAGE_HIDDEN, CAMERA_SWITCHED)
# Seen by the server:
CLIENT_CHANGED = "client_changed"    # another browser family or OS than an earlier attempt's
_DETAIL = re.compile(r"[A-Za-z0-9 ._@x·-]{1,40}")


def parse(text: str | None) -> list[dict]:
    """The page's signals as stored, each known code once; [] when none or unreadable."""
    if not text or len(text.encode("utf-8", "replace")) > MAX_BYTES:
        return []
    try:
        sent = json.loads(text)
    except ValueError:
        return []
    found: dict[str, str | None] = {}
    for item in sent if isinstance(sent, list) else ():
        if isinstance(item, dict) and item.get("code") in PAGE_SIGNALS and item["code"] not in found:
            detail = item.get("detail")
            found[item["code"]] = detail if isinstance(detail, str) and _DETAIL.fullmatch(detail) else None
    return [{"code": code, "detail": detail} for code, detail in found.items()]


def client_changed(earlier: Iterable[tuple[str | None, str | None]], browser: str | None,
                   system: str | None) -> dict | None:
    """The signal for an attempt from (browser, system) after attempts from `earlier` clients."""
    before = [(b, s) for b, s in earlier if b and s]
    if not before or not browser or not system or (browser, system) == before[-1]:
        return None
    return {"code": CLIENT_CHANGED, "detail": f"{before[-1][0]} · {before[-1][1]} → {browser} · {system}"[:80]}


def dumps(signals: list[dict]) -> str | None:
    return json.dumps(signals) if signals else None
