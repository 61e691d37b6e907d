"""One deadline for a whole HTTP exchange, and giving up at once when asked.

requests' read timeout applies to each socket read, so an answer trickled one byte at a time
never times out. A call runs inside a :class:`Deadline`; the connections of an adapter with
:class:`DeadlineAdapter` register with the deadline of the thread that uses them, and the deadline
shuts their sockets when it passes (or on abort), which ends any blocked read at once. Used by
the Juhe client (``webapp.juhe.client``) and by ``webapp.api.video_url`` for its downloads.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_watching = threading.local()  # .deadline: the Deadline of the call this thread is making


class Deadline:
    """`with Deadline(seconds, abort):` around a request through a :class:`DeadlineAdapter`: the
    whole exchange ends by then, or as soon as `abort` is set (`.fired` tells whether it was
    cut, `.why` says why). A thread of its own watches the clock, since the caller is blocked in
    a read."""

    def __init__(self, seconds: float, abort: threading.Event | None) -> None:
        self.seconds, self.abort = seconds, abort
        self.fired = False
        self.why = ""
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="juhe-deadline", daemon=True)

    def __enter__(self) -> Deadline:
        _watching.deadline = self
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _watching.deadline = None
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


def _watch(sock: socket.socket | None) -> None:
    """Hand a connection's socket to the thread's deadline, if a call is running under one."""
    deadline: Deadline | None = getattr(_watching, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.add(sock)


# The socket is handed over when the connection is made, and again when a kept-alive connection
# is reused (http.client may drop `sock` once a response owns it).

class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """The same watch over TLS (the MRO runs HTTPSConnection's connect under ours)."""


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose connections the calling thread's :class:`Deadline` cuts. Put it
    before another adapter class to add this to it (``class A(DeadlineAdapter, PinnedAdapter)``)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
