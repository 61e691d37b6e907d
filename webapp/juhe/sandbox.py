"""The sandbox: an in-process stand-in for Juhe's antiFaceId endpoint.

``sandbox_session()`` returns a ``requests.Session`` whose transport adapter answers the
``JuheClient``'s POST without any network, in Juhe's wire format (HTTP 200, JSON with
``error_code``/``reason``/``result``). It applies Juhe's input rules in the order Juhe
plausibly does (key, video present, parameters, identity, video size) and the local video
checks Juhe would make, then lets the ID number choose the outcome (``TEST_IDS``):

    110101 19900307 NNN C   (region, birth date, sequence, GB 11643 check character)
    NNN 501-549  -> service code 2675NN
    NNN 001-021  -> system code 100NN where Juhe defines one
    NNN 600-699  -> error_code 0, score NNN - 600
    anything else, and any other valid ID number -> error_code 0, score 92.5

Any non-empty key is accepted. Nothing about the person is kept: the video lives in a
temporary file only while it is probed, and no identity is logged.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from ..guidance import guidance_for
from ..identity import IdentityError, check_digit, normalize_idcard, normalize_realname

log = logging.getLogger("webapp.juhe.sandbox")

MAX_BASE64_CHARS = 8 * 1024 * 1024  # "BASE64编码后的大小不超过8M"
DEFAULT_SCORE = 92.5
TEST_REGION, TEST_BIRTH = "110101", "19900307"
SYSTEM_CODES = (10001, 10002, 10003, 10004, 10005, 10007, 10008, 10009, 10011, 10012, 10013,
                10014, 10020, 10021)

# A real 16x16 grey JPEG (made with ffmpeg, bit-exact, no metadata): the "best frame".
_BEST_FRAME_JPEG = (
    "/9j/4AAQSkZJRgABAgAAAQABAAD/2wBDAAgUFBcUFxsbGxsbGyAeICEhISAgICAhISEkJCQqKiokJCQhISQk"
    "KCgqKi4vLisrKisvLzIyMjw8OTlGRkhWVmf/xABKAAEAAAAAAAAAAAAAAAAAAAAAAQEAAAAAAAAAAAAAAAAA"
    "AAAAEAEAAAAAAAAAAAAAAAAAAAAAEQEAAAAAAAAAAAAAAAAAAAAA/8AAEQgAEAAQAwEiAAIRAAMRAP/aAAwD"
    "AQACEQMRAD8AAA//2Q=="
)


# --- test ID numbers -----------------------------------------------------------------------

def sandbox_idcard(sequence: int) -> str:
    """The sandbox test ID number with sequence ``NNN`` (0-999), check character included."""
    first17 = f"{TEST_REGION}{TEST_BIRTH}{sequence:03d}"
    return first17 + check_digit(first17)


def _outcome(idcard: str) -> tuple[str, float | int]:
    """What the test table says for ``idcard``: ("system"|"service", code) or ("score", score)."""
    if idcard.startswith(TEST_REGION + TEST_BIRTH):
        seq = int(idcard[14:17])
        if 501 <= seq <= 549:
            return "service", 267000 + seq
        if 10000 + seq in SYSTEM_CODES:
            return "system", 10000 + seq
        if 600 <= seq <= 699:
            return "score", float(seq - 600)
    return "score", DEFAULT_SCORE


def _describe(sequence: int) -> str:
    kind, value = _outcome(sandbox_idcard(sequence))
    if kind == "score":
        return f"error_code 0, score {value:g}"
    return f"{kind} code {value}: {guidance_for(int(value)).meaning}"


TEST_IDS: list[tuple[str, str]] = [
    (sandbox_idcard(seq), _describe(seq))
    for seq in [100, 600, 650, 669, 670, 699, *range(501, 550),
                *(code - 10000 for code in SYSTEM_CODES)]
]
"""(ID number, expected outcome) for docs, the ``sandbox-ids`` command and tests."""


# --- Juhe's rules --------------------------------------------------------------------------

def answer(fields: Mapping[str, str], tools: Any = None) -> dict[str, Any]:
    """Juhe's JSON answer for the decoded form ``fields`` (first value of each parameter)."""
    def get(name: str) -> str:
        return (fields.get(name) or "").strip()

    if not get("key"):
        return _error(10001)
    if not get("videoBase64") and not get("videoUrl"):
        return _error(267502)
    liveness = get("livenessType") or "0"  # "不传默认为静默模式"
    if liveness not in ("0", "1", "2"):
        return _error(267503)
    if not _valid(normalize_idcard, get("idcard")):
        return _error(267504)
    if not _valid(normalize_realname, get("realname")):
        return _error(267505)
    validate = get("validateData")
    if liveness == "1" and not re.fullmatch(r"[0-9]{4}", validate):
        return _error(267506)
    if liveness == "2" and validate not in ("1,2", "2,1"):
        return _error(267507)
    frames = get("bestFrameNum")
    if frames and not (re.fullmatch(r"[0-9]{1,2}", frames) and 2 <= int(frames) <= 10):
        return _error(267510)
    if not get("videoBase64"):
        return _error(267524)  # only videoUrl: the sandbox downloads nothing
    video = _decode(get("videoBase64"))
    if video is None:
        return _error(267536)
    rejected = _video_code(video, liveness_type=int(liveness), tools=tools)
    if rejected:
        return _error(rejected)

    kind, value = _outcome(get("idcard"))
    if kind != "score":
        return _error(int(value))
    res: dict[str, Any] = {"score": value}
    if get("bestBase64") == "1":
        res["bestBase64"] = _BEST_FRAME_JPEG
    if frames:
        res["bestList"] = [_BEST_FRAME_JPEG] * int(frames)
    return {"reason": "成功", "result": {"res": res, "orderid": _orderid()}, "error_code": 0}


def _valid(normalize, value: str) -> bool:
    """True when ``value`` is already in the exact form Juhe accepts."""
    try:
        return normalize(value) == value
    except IdentityError:
        return False


def _decode(text: str) -> bytes | None:
    """The video bytes, or None when Juhe would answer 267536 (too big, not base64, empty)."""
    if len(text) > MAX_BASE64_CHARS:
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return data or None


def _video_code(data: bytes, *, liveness_type: int, tools: Any) -> int | None:
    """The code Juhe would answer for this video after looking at it, or None when it is fine."""
    from .. import video

    tools = tools if tools is not None else video.Tools()
    with tempfile.TemporaryDirectory(prefix="juhe-sandbox-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(data)
        try:
            info = video.probe(path, tools=tools)
        except video.VideoRejected as rejected:
            return rejected.code
        except (video.VideoToolError, OSError, subprocess.SubprocessError) as exc:
            # Our "liveness engine" (ffprobe) failed: answer as Juhe does when its engine fails.
            log.warning("sandbox could not probe the video: %s", type(exc).__name__)
            return 267545
    if info.video_codec != "h264" or info.container not in ("mov", "avi", "flv"):
        return 267537  # Juhe wants H.264 in mp4/avi/flv
    if min(info.width, info.height) < 270:
        return 267538  # "分辨率支持270p~1080p"
    if info.duration is None or info.duration < 2.0:
        return 267549
    if liveness_type == 1 and info.audio_codec is None:
        return 267539
    return None


def _error(code: int) -> dict[str, Any]:
    """A non-zero answer; the billed 267509 carries an order id like Juhe's."""
    result = {"orderid": _orderid()} if code == 267509 else None
    return {"reason": guidance_for(code).meaning, "result": result, "error_code": code}


def _orderid() -> str:
    return f"SANDBOX{time.strftime('%Y%m%d%H%M%S')}{secrets.randbelow(10**6):06d}"


# --- the transport -------------------------------------------------------------------------

class SandboxAdapter(BaseAdapter):
    """A ``requests`` transport that answers every request as Juhe would, in process."""

    def __init__(self, tools: Any = None) -> None:
        super().__init__()
        self.tools = tools

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        """Parse the form like Juhe's gateway, apply the rules, return HTTP 200 + JSON."""
        body = _json_bytes(answer(_form(request), self.tools))
        response = requests.Response()
        response.status_code, response.reason = 200, "OK"
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json;charset=utf-8",
                                                "Content-Length": str(len(body))})
        response._content = body
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to release."""


def _form(request: requests.PreparedRequest) -> dict[str, str]:
    """Query string plus, when the body is form-urlencoded, the body's fields (first values)."""
    fields = {k: v[0] for k, v in parse_qs(urlsplit(request.url or "").query,
                                           keep_blank_values=True).items()}
    content_type = str(request.headers.get("Content-Type") or "").lower()
    if content_type.split(";")[0].strip() == "application/x-www-form-urlencoded" and request.body:
        body = request.body
        try:
            text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
        except UnicodeDecodeError:
            text = ""
        fields.update({k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()})
    return fields


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def sandbox_session(tools: Any = None) -> requests.Session:
    """A Session whose http:// and https:// requests are answered by the sandbox.

    ``tools`` is the ``webapp.video.Tools`` used for the video checks (defaults when None).
    """
    session = requests.Session()
    adapter = SandboxAdapter(tools)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
