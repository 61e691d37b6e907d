"""A real HTTP server on 127.0.0.1 standing in for Juhe's antiFaceId endpoint, for tests.

Written independently of ``webapp.juhe.sandbox`` (it must not import it) so that the two check each
other: it parses the raw form body itself, rejects what Juhe would reject and inspects the
video with ``ffprobe``. Every request is recorded (without the video bytes) in ``requests``.

    standin = JuheStandIn(key="k").start()
    standin.script["110101199003070011"] = 267517       # canned answer for one ID number
    standin.mode = JuheStandIn.SLOW                       # or TRICKLE, HTTP_500, HTML, DROP, 10012, ...
    ...
    standin.stop()

``script`` values and ``mode`` may be: an int error code (answered with ``result: null``, or
an orderid for the billed 267509), a float score (error_code 0 with that score), a dict (sent
as JSON as is), bytes (sent raw as the JSON body), or one of the behaviour names below. ``mode`` applies to every request; behaviours other than
SLOW and TRICKLE answer before any check (like a broken gateway), SLOW delays the normal answer,
TRICKLE sends it one byte every ``trickle_seconds``.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from werkzeug.serving import WSGIRequestHandler, make_server

MAX_BASE64_CHARS = 8 * 1024 * 1024
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_NAME = re.compile(r"[\u3400-\u9fff]+(·[\u3400-\u9fff]+)*")

# Juhe's wording for the codes the stand-in produces itself.
REASONS = {
    0: "成功", 10001: "错误的请求KEY", 10012: "请求超过次数限制", 10014: "系统内部异常",
    10020: "接口维护", 267502: "videoBase64和videoUrl不可同时为空", 267503: "livenessType错误",
    267504: "身份证格式错误", 267505: "姓名格式错误", 267506: "请输入4位数字的数字验证码",
    267507: "请传入正确的动作顺序参数", 267509: "姓名和身份证号不一致，请核实后重试。(收费)",
    267510: "bestFrameNum取值在2-10范围内", 267517: "光线太暗", 267524: "文件下载失败",
    267536: "视频为空，或大小不合适，请控制录制时长在6s左右", 267537: "视频格式有误",
    267538: "视频像素太低", 267539: "未检测到声音", 267549: "视频录制时间过短，请录制2秒以上的视频",
}


def gb11643_check(first17: str) -> str:
    """The GB 11643 check character for 17 digits."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


def make_idcard(first17: str) -> str:
    """``first17`` plus its check character."""
    return first17 + gb11643_check(first17)


def make_video(path: Path, *, seconds: float = 3.0, size: str = "640x480", audio: bool = True,
               ffmpeg: str = "ffmpeg") -> Path:
    """Write a small H.264 (+AAC) MP4 test video with ffmpeg; returns ``path``."""
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    cmd += ["-c:a", "aac"] if audio else ["-an"]
    subprocess.run(cmd + [str(path)], check=True, timeout=120, capture_output=True)
    return path


class _QuietHandler(WSGIRequestHandler):
    """No access log lines in the test output."""

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class JuheStandIn:
    """The stand-in server; see the module docstring."""

    SLOW, HTTP_500, HTTP_502, HTML, GARBAGE, DROP, TRICKLE = (
        "slow", "http_500", "http_502", "html", "garbage", "drop", "trickle")
    PATH = "/antiFaceId/query"

    def __init__(self, key: str = "standin-key", *, slow_seconds: float = 5.0,
                 ffprobe: str = "ffprobe", ffmpeg: str = "ffmpeg", score: float = 91.0) -> None:
        self.key = key
        self.slow_seconds = slow_seconds
        self.trickle_seconds = 0.5  # TRICKLE: the pause between two bytes of the answer
        self.inspect = True  # ffprobe each video as Juhe's engine would
        self.ffprobe, self.ffmpeg = ffprobe, ffmpeg
        self.score = score
        self.mode: str | int | float | dict | None = None
        self.script: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._orders = itertools.count(1)
        self._server = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> JuheStandIn:
        """Serve on a random free port in a daemon thread."""
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="juhe-standin")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake slow answers, stop serving and free the port."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> JuheStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint URL (like http://apis.juhe.cn/antiFaceId/query)."""
        return f"http://127.0.0.1:{self._server.server_port}{self.PATH}"

    # -- the WSGI app -------------------------------------------------------------------------

    def _app(self, environ: dict, start_response) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        content_type = environ.get("CONTENT_TYPE", "")
        fields = _parse_form(environ.get("QUERY_STRING", ""), raw, content_type)
        record: dict[str, Any] = {
            "method": environ["REQUEST_METHOD"], "path": environ.get("PATH_INFO"),
            "content_type": content_type, "body_bytes": len(raw),
            "form": {k: v for k, v in fields.items() if k != "videoBase64"},
            "video_base64_chars": len(fields.get("videoBase64", "")),
            "video_bytes": None, "video_sha256": None, "probe": None, "answer": None,
        }
        with self._lock:
            self.requests.append(record)

        behaviour = self.mode
        if behaviour not in (None, self.SLOW, self.TRICKLE):
            return self._respond(environ, start_response, behaviour, record)
        verdict = self._judge(fields, record)
        if behaviour == self.SLOW or verdict == self.SLOW:
            self._stopping.wait(self.slow_seconds)
            verdict = self._default(fields, record) if verdict == self.SLOW else verdict
        if behaviour == self.TRICKLE:
            return self._trickle(b"".join(self._respond(environ, start_response, verdict, record)))
        return self._respond(environ, start_response, verdict, record)

    def _trickle(self, body: bytes):
        """The normal answer, one byte at a time (each read of the client's succeeds quickly,
        the whole answer takes len(body) × trickle_seconds)."""
        for i in range(len(body)):
            if self._stopping.wait(self.trickle_seconds if i else 0):
                return
            yield body[i:i + 1]

    def _respond(self, environ: dict, start_response, what: Any, record: dict) -> list[bytes]:
        """Send ``what``: a behaviour name, a code, a score or a JSON dict."""
        if what == self.DROP:
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)  # EOF without an answer
            record["answer"] = "dropped"
            start_response("200 OK", [("Content-Length", "0")])
            return []
        if what in (self.HTTP_500, self.HTTP_502):
            status = "500 Internal Server Error" if what == self.HTTP_500 else "502 Bad Gateway"
            return self._send(start_response, status, "text/html", b"<h1>%s</h1>" % status.encode(),
                              record, status)
        if what == self.HTML:
            page = "<!doctype html><html><body><h1>聚合数据</h1><p>维护中</p></body></html>"
            return self._send(start_response, "200 OK", "text/html; charset=utf-8",
                              page.encode(), record, "html")
        if what == self.GARBAGE:
            return self._send(start_response, "200 OK", "application/json;charset=utf-8",
                              b"\x89\x00\xff{garbage" + os.urandom(32), record, "garbage")
        if isinstance(what, bytes):
            return self._send(start_response, "200 OK", "application/json;charset=utf-8",
                              what, record, "raw")
        if isinstance(what, dict):
            data = what
        elif isinstance(what, float):
            data = self._pass(what, {})
        else:
            data = self._error(int(what))
        record["answer"] = data.get("error_code")
        return self._send(start_response, "200 OK", "application/json;charset=utf-8",
                          json.dumps(data, ensure_ascii=False).encode(), record, None)

    @staticmethod
    def _send(start_response, status: str, content_type: str, body: bytes, record: dict,
              label: str | None) -> list[bytes]:
        if label is not None:
            record["answer"] = label
        start_response(status, [("Content-Type", content_type),
                                ("Content-Length", str(len(body)))])
        return [body]

    # -- Juhe's rules -------------------------------------------------------------------------

    def _judge(self, fields: dict[str, str], record: dict) -> Any:
        """Apply Juhe's input rules and video checks; then the script; then the default."""
        f = {k: v.strip() for k, v in fields.items()}
        if not f.get("key") or f["key"] != self.key:
            return 10001
        if not f.get("videoBase64") and not f.get("videoUrl"):
            return 267502
        liveness = f.get("livenessType") or "0"
        if liveness not in {"0", "1", "2"}:
            return 267503
        idcard = f.get("idcard", "")
        if not (re.fullmatch(r"[0-9]{17}[0-9X]", idcard)
                and gb11643_check(idcard[:17]) == idcard[17]):
            return 267504
        name = f.get("realname", "")
        if not (_NAME.fullmatch(name) and len(name.replace("·", "")) >= 2 and len(name) <= 30):
            return 267505
        validate = f.get("validateData", "")
        if liveness == "1" and not re.fullmatch(r"[0-9]{4}", validate):
            return 267506
        if liveness == "2" and validate not in {"1,2", "2,1"}:
            return 267507
        frames = f.get("bestFrameNum", "")
        if frames and not (frames.isdigit() and 2 <= int(frames) <= 10):
            return 267510
        if not f.get("videoBase64"):
            return 267524  # videoUrl only: the stand-in downloads nothing
        b64 = f["videoBase64"]
        if len(b64) > MAX_BASE64_CHARS:
            return 267536
        try:
            video = base64.b64decode(b64, validate=True)
        except ValueError:
            return 267536
        if not video:
            return 267536
        record["video_bytes"] = len(video)
        record["video_sha256"] = hashlib.sha256(video).hexdigest()
        code = self._check_video(video, liveness, record)
        if code:
            return code
        if idcard in self.script:
            return self.script[idcard]
        return self._default(fields, record, video)

    def _check_video(self, video: bytes, liveness: str, record: dict) -> int | None:
        """ffprobe the video like Juhe's engine would; the rejecting code or None. With
        `inspect` off (load benchmarks: Juhe's work is not this machine's) nothing is checked."""
        if not self.inspect:
            return None
        info = self._probe(video)
        record["probe"] = info
        if info is None or "mp4" not in info["format"].split(",") or info["video_codec"] != "h264":
            return 267537
        if min(info["width"], info["height"]) < 270:
            return 267538
        if (info["duration"] or 0.0) < 2.0:
            return 267549
        if liveness == "1" and not info["audio_codec"]:
            return 267539
        return None

    def _probe(self, video: bytes) -> dict[str, Any] | None:
        with tempfile.TemporaryDirectory(prefix="juhe-standin-") as tmp:
            path = Path(tmp) / "video"
            path.write_bytes(video)
            done = subprocess.run(
                [self.ffprobe, "-v", "error", "-print_format", "json", "-show_format",
                 "-show_streams", str(path)], capture_output=True, timeout=30)
        if done.returncode != 0:
            return None
        try:
            data = json.loads(done.stdout)
        except ValueError:
            return None
        streams = data.get("streams") or []
        v = next((s for s in streams if s.get("codec_type") == "video"), None)
        a = next((s for s in streams if s.get("codec_type") == "audio"), None)
        if v is None:
            return None
        duration = data.get("format", {}).get("duration") or v.get("duration")
        return {
            "format": data.get("format", {}).get("format_name", ""),
            "video_codec": v.get("codec_name"), "width": int(v.get("width") or 0),
            "height": int(v.get("height") or 0),
            "duration": float(duration) if duration else None,
            "audio_codec": a.get("codec_name") if a else None,
        }

    def _default(self, fields: dict[str, str], record: dict, video: bytes | None = None) -> dict:
        return self._pass(self.score, fields, video)

    def _pass(self, score: float, fields: dict[str, str], video: bytes | None = None) -> dict:
        res: dict[str, Any] = {"score": score}
        if fields.get("bestBase64") == "1":
            res["bestBase64"] = self._best_frame(video)
        if fields.get("bestFrameNum"):
            res["bestList"] = [self._best_frame(video)] * int(fields["bestFrameNum"])
        return {"reason": "成功", "result": {"res": res, "orderid": self._orderid()},
                "error_code": 0}

    def _error(self, code: int) -> dict:
        result = {"orderid": self._orderid()} if code == 267509 else None
        return {"reason": REASONS.get(code, "错误"), "result": result, "error_code": code}

    def _best_frame(self, video: bytes | None) -> str | None:
        """A JPEG of the video's first second, base64 (None, as Juhe may say, without video)."""
        if not video:
            return None
        with tempfile.TemporaryDirectory(prefix="juhe-standin-") as tmp:
            path = Path(tmp) / "video"
            path.write_bytes(video)
            done = subprocess.run(
                [self.ffmpeg, "-v", "error", "-ss", "1", "-i", str(path), "-frames:v", "1",
                 "-vf", "scale=160:-2", "-f", "image2", "-c:v", "mjpeg", "pipe:1"],
                capture_output=True, timeout=30)
        return base64.b64encode(done.stdout).decode() if done.returncode == 0 else None

    def _orderid(self) -> str:
        return f"J{time.strftime('%Y%m%d%H%M%S')}{next(self._orders):04d}{secrets.randbelow(1000):03d}"


def _parse_form(query: str, raw: bytes, content_type: str) -> dict[str, str]:
    """Parameters as Juhe's gateway sees them: the query string, plus the body only when it is
    application/x-www-form-urlencoded (a JSON or multipart body shows no fields at all)."""
    fields = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        text = raw.decode("utf-8", errors="replace")
        rest, videos = _split_videos(text)
        fields.update({k: v[0] for k, v in parse_qs(rest, keep_blank_values=True).items()})
        fields.update(videos)
    return fields


_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _unquote_base64(value: str) -> str | None:
    """A quoted base64 value unquoted, or None when it holds anything else."""
    plain = value.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")
    return plain if plain.isascii() and not plain.encode().translate(None, _ALNUM + b"+/=") \
        and "+" not in value else None


def _split_videos(text: str) -> tuple[str, dict[str, str]]:
    """The body without its long base64 fields, and those fields unquoted (parse_qs unquotes a
    2 MB video in Python: ~40 ms of the load benchmark's CPU per call). A name given twice
    leaves the body whole for parse_qs."""
    pairs = [pair.partition("=") for pair in text.split("&")]
    names = [name for name, _, _ in pairs]
    videos = {name: plain for name, _, value in pairs
              if len(value) > 1024 and name.isalnum() and names.count(name) == 1
              and (plain := _unquote_base64(value)) is not None}
    if not videos:
        return text, {}
    return "&".join("".join(p) for p in pairs if p[0] not in videos), videos
