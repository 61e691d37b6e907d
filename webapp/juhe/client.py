"""Client for Juhe's antiFaceId (video liveness + identity comparison) API: the HTTP exchange.

One call = one POST of the person's video and identity to Juhe; the answer is either a
:class:`JuheResult` (every service-level answer: ``error_code`` 0 or 2675xx) or a
:class:`JuheError` (HTTP errors, unreadable answers, system codes 100xx, timeouts, no
connection). Those types and Juhe's code table live in ``webapp.juhe.answer`` (re-exported
here); the deadline that cuts a call's sockets in ``webapp.juhe.deadline``. The client knows nothing
of Flask; the ``requests.Session`` is injected so that the sandbox (``webapp.juhe.sandbox``) and
tests can supply their own transport.

Secrets and personal data: the key travels in the form body only (never in the URL), and
neither the key, the full ID number, the name nor the video appear in reprs, exception
messages or log lines.
"""
from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from urllib.parse import quote_plus

import requests
from requests import exceptions as rex
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from ..identity import mask_idcard, mask_realname
from .answer import (
    CHARGED_CODES,
    LIVENESS_TYPES,
    SERVICE_CODE_FLOOR,
    JuheError,
    JuheResult,
    VerifyRequest,
    legacy_code,
)
from .deadline import Deadline, DeadlineAdapter

__all__ = ["CHARGED_CODES", "LIVENESS_TYPES", "SERVICE_CODE_FLOOR", "JuheClient", "JuheError",
           "JuheResult", "VerifyRequest", "form_body", "http_session"]

log = logging.getLogger("webapp.juhe.client")


def _chain(exc: BaseException) -> Iterator[BaseException]:
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
    return any(isinstance(e, (NewConnectionError, ConnectionRefusedError, socket.gaierror))
               for e in _chain(exc))


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
            watch = Deadline(self.timeout[0] + self.timeout[1], abort)
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
            code = legacy_code(data.get("resultcode"))
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


def http_session() -> requests.Session:
    """The requests.Session for talking to Juhe: one whose connections a call's deadline cuts."""
    session = requests.Session()
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
