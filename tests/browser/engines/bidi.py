"""A small synchronous WebDriver BiDi client: one websocket, one command at a time.

Every command carries an id and waits, for a limited time, for the answer with that id; events
that arrive meanwhile are kept (the last EVENTS_KEPT of them) for `wait_event`. Answers to
commands that were given up on are dropped when they arrive late.
"""
from __future__ import annotations

import collections
import itertools
import json
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

EVENTS_KEPT = 1000


class BidiError(RuntimeError):
    """The browser answered a command with an error, or the connection failed."""

    def __init__(self, method: str, error: str, message: str):
        super().__init__(f"{method}: {error}: {message}")
        self.method, self.error = method, error


class BidiTimeout(BidiError, TimeoutError):
    """No answer (or no awaited event) within the time limit."""


class BidiClient:
    def __init__(self, url: str, *, timeout: float = 10):
        # Screenshots of a phone at twice its pixels exceed websockets' default 1 MiB.
        self._socket = connect(url, legacy=True, open_timeout=timeout, close_timeout=2,
                               ping_interval=None, max_size=None)
        self._ids = itertools.count(1)
        self.events: collections.deque[dict] = collections.deque(maxlen=EVENTS_KEPT)

    def send(self, method: str, params: dict | None = None, *, timeout: float = 30) -> dict:
        """Send `method` with `params`; return its result, or raise BidiError (an error answer)
        or BidiTimeout (no answer within `timeout` seconds)."""
        command_id = next(self._ids)
        try:
            self._socket.send(json.dumps({"id": command_id, "method": method,
                                          "params": params or {}}))
        except ConnectionClosed as error:
            raise BidiError(method, "connection closed", str(error)) from None
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(method, deadline, f"no answer within {timeout:g} s")
            if message.get("id") != command_id:
                continue
            if message.get("type") == "error":
                raise BidiError(method, message.get("error", "error"), message.get("message", ""))
            return message["result"]

    def wait_event(self, method: str, *, match=lambda params: True,
                   timeout: float = 10) -> dict:
        """The params of the first kept or coming event `method` whose params satisfy `match`
        (it is taken out of `events`). Events must have been subscribed to (session.subscribe)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["method"] == method and match(event["params"]):
                    self.events.remove(event)
                    return event["params"]
            self._receive(method, deadline, f"no such event within {timeout:g} s")

    def _receive(self, method: str, deadline: float, why: str) -> dict:
        """The next message; an event is also kept in `events`."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BidiTimeout(method, "timeout", why)
        try:
            message = json.loads(self._socket.recv(timeout=remaining))
        except TimeoutError:
            raise BidiTimeout(method, "timeout", why) from None
        except ConnectionClosed as error:
            raise BidiError(method, "connection closed", str(error)) from None
        if message.get("type") == "event":
            self.events.append(message)
        return message

    def close(self) -> None:
        """End the session (if the browser still answers) and close the websocket."""
        try:
            self.send("session.end", timeout=5)
        except BidiError:
            pass
        self._socket.close()
