"""Client for Juhe's antiFaceId (video liveness + identity comparison) API.

One call = one POST of the person's video and identity to Juhe; the answer is either a
:class:`JuheResult` (every service-level answer: ``error_code`` 0 or 2675xx) or a
:class:`JuheError` (HTTP errors, unreadable answers, system codes 100xx, timeouts, no
connection). The client knows nothing of Flask; the ``requests.Session`` is injected so that
the sandbox (``webapp.sandbox``) and tests can supply their own transport.

Secrets and personal data: the key travels in the form body only (never in the URL), and
neither the key, the full ID number, the name nor the video appear in reprs, exception
messages or log lines.
"""
from __future__ import annotations

import base64
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import requests
from requests import exceptions as rex
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .identity import mask_idcard, mask_realname

try:  # urllib3 is a dependency of requests; the import only sharpens retry decisions.
    from urllib3.exceptions import NewConnectionError, ReadTimeoutError
except ImportError:  # pragma: no cover
    NewConnectionError = ReadTimeoutError = ()  # type: ignore[assignment,misc]

log = logging.getLogger("webapp.juhe")

LIVENESS_TYPES = (0, 1, 2)  # 0 silent, 1 number (4 digits read aloud), 2 action ("1,2"/"2,1")
CHARGED_CODES = frozenset({0, 267509})  # per Juhe's document: only these are billed
SERVICE_CODE_FLOOR = 200000  # codes below this (except 0) are system level (100xx)

# Juhe's old API versions answered system errors with `resultcode` 101..121 as well as (or,
# in very old gateways, instead of) `error_code` 10001..10021. We only fall back to it when
# `error_code` is absent, and only for the documented system codes.
_LEGACY_SYSTEM_CODES = {
    101: 10001, 102: 10002, 103: 10003, 104: 10004, 105: 10005, 107: 10007, 108: 10008,
    109: 10009, 111: 10011, 112: 10012, 113: 10013, 114: 10014, 120: 10020, 121: 10021,
}


# --- request / result ----------------------------------------------------------------------

@dataclass(frozen=True)
class VerifyRequest:
    """What one liveness call sends. The repr masks the identity and omits the video."""

    idcard: str
    realname: str
    video: bytes = field(repr=False)
    liveness_type: int
    validate_data: str | None  # "1234" for number mode, "1,2"/"2,1" for action mode
    best_frame: bool = False  # bestBase64=1
    best_frame_num: int | None = None  # bestFrameNum, 2..10

    def __post_init__(self) -> None:
        """Refuse what can never be a valid Juhe request (Juhe would answer 267503/267510)."""
        if self.liveness_type not in LIVENESS_TYPES or isinstance(self.liveness_type, bool):
            raise ValueError("liveness_type must be 0, 1 or 2")
        if self.best_frame_num is not None and (
            isinstance(self.best_frame_num, bool)
            or not isinstance(self.best_frame_num, int)
            or not 2 <= self.best_frame_num <= 10
        ):
            raise ValueError("best_frame_num must be an integer from 2 to 10")

    def __repr__(self) -> str:
        return (
            f"VerifyRequest(idcard={mask_idcard(self.idcard)!r}, "
            f"realname={mask_realname(self.realname)!r}, video=<{len(self.video)} bytes>, "
            f"liveness_type={self.liveness_type}, validate_data={self.validate_data!r}, "
            f"best_frame={self.best_frame}, best_frame_num={self.best_frame_num})"
        )

    __str__ = __repr__

    def form(self, key: str) -> dict[str, str]:
        """The form fields Juhe expects (application/x-www-form-urlencoded)."""
        fields = {
            "key": key,
            "idcard": self.idcard,
            "realname": self.realname,
            # Standard base64 (with + and /); the form encoding percent-escapes them.
            "videoBase64": base64.b64encode(self.video).decode("ascii"),
            "livenessType": str(self.liveness_type),
        }
        if self.liveness_type in (1, 2) and self.validate_data is not None:
            fields["validateData"] = self.validate_data
        if self.best_frame:
            fields["bestBase64"] = "1"
        if self.best_frame_num is not None:
            fields["bestFrameNum"] = str(self.best_frame_num)
        return fields  # never "videoUrl": the video always travels in the body


def _parse_score(value: Any) -> float | None:
    """Juhe's score as a float in [0, 100]; accepts numbers and numeric strings, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(score) or not 0.0 <= score <= 100.0:
        return None
    return score


@dataclass(frozen=True)
class JuheResult:
    """A service-level answer from Juhe (``error_code`` 0 or 2675xx)."""

    error_code: int
    reason: str
    orderid: str | None
    score: float | None
    best_base64: str | None = field(default=None, repr=False)
    best_list: tuple[str, ...] = field(default=(), repr=False)
    charged: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JuheResult:
        """Build from Juhe's decoded JSON. Raises ``ValueError`` when ``error_code`` is not an int.

        Tolerates ``result``/``res`` missing or null, the score as number or string,
        ``bestBase64`` null and ``bestList`` missing or null.
        """
        code = data.get("error_code")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError("error_code missing or not an integer")
        reason = data.get("reason")
        result = data.get("result")
        result = result if isinstance(result, Mapping) else {}
        res = result.get("res")
        res = res if isinstance(res, Mapping) else {}
        orderid = result.get("orderid")
        best = res.get("bestBase64")
        best_list = res.get("bestList")
        return cls(
            error_code=code,
            reason=reason if isinstance(reason, str) else ("" if reason is None else str(reason)),
            orderid=str(orderid) if orderid not in (None, "") else None,
            score=_parse_score(res.get("score")),
            best_base64=best if isinstance(best, str) and best else None,
            best_list=tuple(b for b in best_list if isinstance(b, str) and b)
            if isinstance(best_list, list) else (),
            charged=code in CHARGED_CODES,
        )

    def passed(self, pass_score: float) -> bool:
        """True when Juhe answered 0 and the similarity reaches ``pass_score``."""
        return self.error_code == 0 and self.score is not None and self.score >= pass_score


class JuheError(Exception):
    """Every way a call can fail to produce a service-level answer.

    ``kind``: ``"system"`` (system code 100xx; ``error_code`` set), ``"http"`` (status >= 300
    or a redirect), ``"invalid_response"`` (not JSON, not an object, no integer error_code, or
    error_code 0 without a usable score), ``"timeout"`` (no answer within the read timeout)
    or ``"connection"`` (no connection, or the connection dropped).
    ``reached`` is False only when no connection was ever made, so nothing can have been
    charged. ``orderid`` is kept when an unusable answer carried one (it may be billed).
    """

    def __init__(self, kind: str, reason: str, *, error_code: int | None = None,
                 reached: bool = True, http_status: int | None = None,
                 orderid: str | None = None) -> None:
        super().__init__(kind, reason)
        self.kind = kind
        self.reason = reason
        self.error_code = error_code
        self.reached = reached
        self.http_status = http_status
        self.orderid = orderid

    @property
    def guidance_key(self) -> int | str:
        """The ``webapp.guidance`` key describing this failure."""
        if self.kind == "system" and self.error_code is not None:
            return self.error_code
        return {"timeout": "juhe_timeout", "connection": "juhe_unreachable"}.get(
            self.kind, "juhe_invalid_response")

    def __str__(self) -> str:
        code = f" {self.error_code}" if self.error_code is not None else ""
        return f"Juhe {self.kind}{code}: {self.reason}"

    def __repr__(self) -> str:
        return (f"JuheError(kind={self.kind!r}, error_code={self.error_code!r}, "
                f"reason={self.reason!r}, reached={self.reached!r})")


# --- client --------------------------------------------------------------------------------

def _chain(exc: BaseException):
    """``exc`` and every exception linked to it (args, urllib3 ``reason``, cause, context)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        reason = getattr(cur, "reason", None)  # urllib3 MaxRetryError
        if isinstance(reason, BaseException):
            stack.append(reason)
        stack.extend(a for a in getattr(cur, "args", ()) if isinstance(a, BaseException))
        stack.extend(e for e in (cur.__cause__, cur.__context__) if e is not None)


_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def form_body(form: Mapping[str, str]) -> bytes:
    """``form`` as application/x-www-form-urlencoded bytes, exactly as ``urlencode`` writes them.

    ``urlencode`` quotes a 2 MB video byte by byte in Python (~110 ms of CPU per call, most of a
    worker's work); base64 needs only its three punctuation marks quoted, which ``str.replace``
    does in C.
    """
    parts = []
    for key, value in form.items():
        if len(value) > 1024 and value.isascii() and not value.encode().translate(None, _BASE64):
            quoted = value.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        else:
            quoted = quote_plus(value)
        parts.append(f"{quote_plus(key)}={quoted}")
    return "&".join(parts).encode("ascii")


def _never_connected(exc: BaseException) -> bool:
    """True when a requests ConnectionError happened before any byte of the request was sent.

    Only then is a retry safe: a request whose body reached Juhe may have been judged and
    charged even if the answer was lost.
    """
    if isinstance(exc, rex.ConnectTimeout):
        return True
    if isinstance(exc, (rex.SSLError, rex.ProxyError)):
        return False  # handshake/proxy failures are not transient; do not hammer them
    # NewConnectionError: refused, unreachable, name resolution (urllib3 NameResolutionError).
    return any((NewConnectionError and isinstance(e, NewConnectionError))
               or isinstance(e, (ConnectionRefusedError, socket.gaierror)) for e in _chain(exc))


def _read_timed_out(exc: BaseException) -> bool:
    """True when the failure was a read timeout (requests wraps some in ConnectionError)."""
    return any(isinstance(e, (ReadTimeoutError, socket.timeout)) for e in _chain(exc))


class JuheClient:
    """Calls Juhe's antiFaceId endpoint; see the module docstring."""

    def __init__(self, session: requests.Session, key: str, url: str,
                 timeout: tuple[float, float] = (5.0, 60.0), connect_retries: int = 2,
                 *, backoff: float = 0.5) -> None:
        """``timeout`` is ``(connect, read)``.

        Connect should fail fast (seconds): if Juhe's front door is unreachable nothing was
        sent, and we can retry or tell the person quickly. Read must be long: the answer only
        comes after a multi-megabyte upload and Juhe's liveness engine plus the registry photo
        comparison, which take tens of seconds on a slow day.

        ``connect_retries`` extra tries are made only when no connection was established;
        ``backoff`` is the first pause between them (doubled each time, capped at 2 s).
        """
        if "?" in url and key and key in url:
            raise ValueError("the Juhe key belongs in the request body, not in the URL")
        self._session = session
        self._key = key
        self.url = url
        self.timeout = timeout
        self.connect_retries = max(0, int(connect_retries))
        self.backoff = backoff

    def __repr__(self) -> str:
        return f"JuheClient(url={self._safe_url()!r}, timeout={self.timeout!r})"

    def verify(self, request: VerifyRequest, abort: threading.Event | None = None) -> JuheResult:
        """Send one video; return Juhe's service-level answer or raise :class:`JuheError`.

        The whole answer must arrive within connect + read timeout (an answer trickled byte by
        byte cannot stretch it), and setting `abort` gives up at once; either way the connection
        is shut (with a session from :func:`http_session`) and the call ends as a timeout.
        """
        started = time.monotonic()
        tries = [0]
        try:
            response = self._post(request.form(self._key), tries, abort)
            result = self._interpret(response)
        except JuheError as err:
            self._log(request, started, tries[0], err.error_code, err.orderid,
                      f"error kind={err.kind} reached={err.reached}", logging.WARNING)
            raise
        self._log(request, started, tries[0], result.error_code, result.orderid,
                  "score=%s" % ("-" if result.score is None else f"{result.score:.2f}"),
                  logging.INFO)
        return result

    # -- internals ----------------------------------------------------------------------

    def _post(self, form: dict[str, str], count: list[int],
              abort: threading.Event | None = None) -> requests.Response:
        """POST, retrying only when no connection was made; ``count[0]`` counts the tries."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        while True:
            count[0] += 1
            tries = count[0]
            watch = _Watch(self.timeout[0] + self.timeout[1], abort)
            try:
                with watch:
                    # allow_redirects=False: a redirect would turn the POST into a body-less GET.
                    # Not streamed: the body is read here, inside the watch.
                    return self._session.post(self.url, data=form_body(form), headers=headers,
                                              timeout=self.timeout, allow_redirects=False)
            except rex.RequestException as exc:
                if watch.fired:
                    raise self._timeout(watch.why) from None
                if isinstance(exc, rex.ReadTimeout):
                    raise self._timeout() from None
                self._failure(exc, tries)
                time.sleep(min(self.backoff * 2 ** (tries - 1), 2.0))

    def _failure(self, exc: rex.RequestException, tries: int) -> None:
        """Raise the JuheError for a failed try; return when it may be retried (nothing sent)."""
        if isinstance(exc, (rex.InvalidURL, rex.MissingSchema, rex.InvalidSchema, rex.InvalidHeader)):
            raise JuheError("connection", self._describe(exc), reached=False) from None
        if _never_connected(exc):
            if tries > self.connect_retries:
                raise JuheError("connection", f"could not connect (tries: {tries}): "
                                + self._describe(exc), reached=False) from None
            return
        if _read_timed_out(exc):
            raise self._timeout() from None
        if isinstance(exc, rex.SSLError):  # the handshake failed: nothing was sent
            raise JuheError("connection", self._describe(exc), reached=False) from None
        raise JuheError("connection", "connection lost after the request was sent: "
                        + self._describe(exc), reached=True) from None

    def _timeout(self, why: str | None = None) -> JuheError:
        what = why or f"no answer within {self.timeout[1]:g} s"
        return JuheError("timeout", f"timed out: {what} "
                         "(the request was sent; Juhe may have judged and charged it)",
                         reached=True)

    def _interpret(self, response: requests.Response) -> JuheResult:
        """Turn an HTTP answer into a JuheResult or raise the matching JuheError."""
        status = response.status_code
        if status >= 300:
            what = "redirect (check JUHE_API_URL)" if status < 400 else "error"
            raise JuheError("http", f"HTTP {status} {what}", http_status=status)
        try:
            data = response.json()
        except ValueError:
            raise JuheError("invalid_response", "answer is not JSON "
                            f"({response.headers.get('Content-Type', 'no content type')}, "
                            f"{len(response.content)} bytes)", http_status=status) from None
        if not isinstance(data, dict):
            raise JuheError("invalid_response", "JSON answer is not an object", http_status=status)
        code = data.get("error_code")
        if code is None and "resultcode" in data:
            code = _legacy_code(data.get("resultcode"))
        if isinstance(code, bool) or not isinstance(code, int):
            raise JuheError("invalid_response", "error_code missing or not an integer",
                            http_status=status)
        reason = data.get("reason") if isinstance(data.get("reason"), str) else ""
        if code != 0 and code < SERVICE_CODE_FLOOR:
            raise JuheError("system", reason or "system error", error_code=code, http_status=status)
        result = JuheResult.from_dict({**data, "error_code": code})
        if code == 0 and result.score is None:
            # error_code stays None (it is for system codes); Juhe may have billed this one.
            raise JuheError("invalid_response", "error_code 0 without a usable score "
                            "(possibly charged)", http_status=status, orderid=result.orderid)
        return result

    def _describe(self, exc: BaseException) -> str:
        """An exception's type and message with the key and any query string removed."""
        text = f"{type(exc).__name__}: {exc}"
        if self._key:
            text = text.replace(self._key, "[key]")
        return re.sub(r"\?[^\s'\")]*", "?[query]", text)[:300]

    def _safe_url(self) -> str:
        return self.url.split("?", 1)[0]

    def _log(self, request: VerifyRequest, started: float, connects: int,
             error_code: int | None, orderid: str | None, outcome: str, level: int) -> None:
        log.log(level,
                "juhe antiFaceId idcard=%s realname=%s livenessType=%s video_bytes=%d "
                "elapsed=%.2fs connects=%d error_code=%s orderid=%s %s",
                mask_idcard(request.idcard), mask_realname(request.realname),
                request.liveness_type, len(request.video), time.monotonic() - started,
                connects, "-" if error_code is None else error_code, orderid or "-", outcome)


# --- one deadline per call ------------------------------------------------------------------
#
# requests' read timeout applies to each socket read, so an answer trickled one byte at a time
# never times out. A call runs inside a _Watch; the connections of a session made by
# http_session() register with the watch of the thread that uses them, and the watch shuts their
# sockets at the deadline (or on abort), which ends any blocked read at once.

_watching = threading.local()


class _Watch:
    def __init__(self, seconds: float, abort: threading.Event | None) -> None:
        self.seconds, self.abort = seconds, abort
        self.fired = False
        self.why = ""
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="juhe-deadline", daemon=True)

    def __enter__(self) -> _Watch:
        _watching.watch = self
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _watching.watch = None
        self._done.set()
        self._thread.join()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shut(sock)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._done.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
            aborted = self.abort is not None and self.abort.is_set()
            if aborted or time.monotonic() >= deadline:
                with self._lock:
                    self.fired = True
                    self.why = ("given up: this attempt was released" if aborted
                                else f"no complete answer within {self.seconds:g} s")
                    for sock in self._sockets:
                        _shut(sock)
                return


def _shut(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also under TLS
    except OSError:
        pass


class _WatchedMixin:
    """Hands the connection's socket to the thread's watch: when it is made, and when a kept-
    alive connection is reused (http.client may drop `sock` once a response owns it)."""

    def connect(self) -> None:
        super().connect()
        self._watch()

    def request(self, *args, **kwargs):
        self._watch()
        return super().request(*args, **kwargs)

    def _watch(self) -> None:
        watch = getattr(_watching, "watch", None)
        if watch is not None and self.sock is not None:
            watch.add(self.sock)


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineMixin:
    """Mix into a requests HTTPAdapter: its connections are cut by the calling thread's
    `Deadline` (used by this client, and by webapp.video_url for its downloads)."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _DeadlineAdapter(DeadlineMixin, HTTPAdapter):
    pass


# `with Deadline(seconds, abort):` around a request through a DeadlineMixin adapter: the whole
# exchange ends by then (`.fired` tells whether it was cut, `.why` says why).
Deadline = _Watch


def http_session() -> requests.Session:
    """The requests.Session for talking to Juhe: one whose connections a call's deadline cuts."""
    session = requests.Session()
    adapter = _DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _legacy_code(value: Any) -> int | None:
    """Map a legacy ``resultcode`` ("101".."121") to its documented system code."""
    try:
        return _LEGACY_SYSTEM_CODES.get(int(str(value).strip()))
    except ValueError:
        return None
