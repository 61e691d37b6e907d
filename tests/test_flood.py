"""No single address can take the front door (issue 19): the README's serve command, flooded with
slow uploads from one address, keeps answering everyone else, and refuses that address past its
cap (deploy/nginx.conf's limit_conn)."""
from __future__ import annotations

import json
import re
import resource
import selectors
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import test_serve
from .servers import address
from .test_serve import Served, new_session_path

ROOT = Path(__file__).resolve().parents[1]
FLOODER = "127.9.9.9"        # the one address every slow upload comes from
FLOOD = 1600                 # as measured in the issue: 1,600 held the old nginx's every connection
TRICKLE_EVERY = 3.0          # seconds between two bytes of each slow body
PROBE_SECONDS = 25
ANSWER_WITHIN = 2.0          # seconds


# The README's serve command, started as tests/test_serve.py starts it (its fixture).
serve = test_serve.serve


def enough_descriptors(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 1024
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            hard = want   # root may raise the hard limit; anyone else fails here, saying so
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Flood:
    """`count` connections from `source`, each the headers of a 10 MB upload and then a byte of its
    body every TRICKLE_EVERY seconds, on one thread: `held` have no answer yet and are open,
    `refused` were answered (`statuses`) or closed by the server. As an attacker would, it opens
    a new connection for each one refused, at the next byte."""

    def __init__(self, port: int, path: str, count: int = FLOOD, source: str = FLOODER):
        enough_descriptors(count)
        self.port, self.count, self.source = port, count, source
        self.head = (f"POST {path}/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     "Content-Type: multipart/form-data; boundary=floodfloodflood\r\n"
                     "Content-Length: 10000000\r\n\r\n"
                     "--floodfloodflood\r\nContent-Disposition: form-data; name=\"video\"; "
                     "filename=\"v.webm\"\r\nContent-Type: video/webm\r\n\r\n").encode()
        self.selector = selectors.DefaultSelector()
        self.held: dict[socket.socket, float] = {}   # → when its headers went
        self.refused = 0
        self.to_open, self.reopen = count, 0
        self.statuses: dict[str, int] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self, within: float = 20.0) -> Flood:
        """Open every connection and send its headers (or have it refused) within `within` s."""
        self.thread.start()
        deadline = time.monotonic() + within
        while len(self.held) + self.refused < self.count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self

    def _open(self) -> None:
        s = socket.socket()
        s.setblocking(False)
        s.bind((self.source, 0))
        s.connect_ex(("127.0.0.1", self.port))
        self.selector.register(s, selectors.EVENT_WRITE)

    def _refuse(self, s: socket.socket, answer: bytes = b"") -> None:
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.refused += 1
        self.reopen += 1
        self.held.pop(s, None)
        self.selector.unregister(s)
        s.close()

    def _run(self) -> None:
        next_byte = time.monotonic() + TRICKLE_EVERY
        while not self.stopped.is_set():
            for _ in range(min(100, self.to_open)):    # 100 more at each turn
                self._open()
                self.to_open -= 1
            for key, events in self.selector.select(0.05 if self.to_open else 0.5):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    if events & selectors.EVENT_WRITE:          # connected (or failed to)
                        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            self._refuse(s)
                            continue
                        s.send(self.head)                      # a few hundred bytes: one send
                        self.held[s] = time.monotonic()
                        self.selector.modify(s, selectors.EVENT_READ)
                    elif events & selectors.EVENT_READ:        # an answer, or the end
                        self._refuse(s, s.recv(4096))
                except OSError:
                    self._refuse(s)
            if time.monotonic() >= next_byte:
                next_byte += TRICKLE_EVERY
                self.to_open, self.reopen = self.to_open + self.reopen, 0
                for s in list(self.held):
                    try:
                        s.send(b"x")
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._refuse(s)

    def waiting(self, longer_than: float = 1.0) -> int:
        """Connections whose request has had no answer for `longer_than` seconds: held by nginx."""
        since = time.monotonic() - longer_than
        return sum(1 for sent in list(self.held.values()) if sent < since)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()   # type: ignore[union-attr]
        self.selector.close()


def probe(served: Served, path: str, source: str) -> float | None:
    """Seconds until `path` answered 200 from `source`; None when it failed or took too long."""
    started = time.monotonic()
    try:
        status = served.request("GET", path, timeout=ANSWER_WITHIN, source=source)[0]
    except OSError:
        return None
    took = time.monotonic() - started
    return took if status == 200 and took < ANSWER_WITHIN else None


def probe_every_second(served: Served, paths: list[str], seconds: float) -> list[tuple[str, float | None]]:
    """Each path once a second for `seconds`, each probe from a loopback address of its own."""
    futures = []
    with ThreadPoolExecutor(max_workers=4 * len(paths)) as pool:
        start, n = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            for path in paths:
                futures.append((path, pool.submit(probe, served, path, address(1 + n))))
                n += 1
            time.sleep(max(0.0, start + len(futures) / len(paths) - time.monotonic()))
        return [(path, future.result()) for path, future in futures]


def per_address_cap() -> int:
    """limit_conn in deploy/nginx.conf: how many requests one address may have in hand."""
    return int(re.search(r"^\s*limit_conn \w+ (\d+);", (ROOT / "deploy/nginx.conf").read_text(), re.M)[1])


def test_one_address_of_slow_uploads_cannot_take_the_front_door(serve, record_property):
    served = serve()
    flooded, other = new_session_path(served), new_session_path(served)   # two people's pages
    flood = Flood(served.port, flooded).start()
    try:
        time.sleep(TRICKLE_EVERY)    # every slow body has begun
        probes = probe_every_second(served, ["/healthz", other, "/static/app.css"], PROBE_SECONDS)
        held, refused, statuses = flood.waiting(), flood.refused, dict(flood.statuses)
    finally:
        flood.close()
    failed = [path for path, took in probes if took is None]
    times = [took for _, took in probes if took is not None]
    summary = {"probes": len(probes), "failed": len(failed),
               "failed_healthz": failed.count("/healthz"),
               "median_s": round(statistics.median(times), 3) if times else None,
               "max_s": round(max(times), 3) if times else None,
               "flood_held": held, "flood_refused": refused, "flood_answers": statuses}
    record_property("flood", summary)
    print(f"{FLOOD} slow uploads from {FLOODER}: {summary}")
    assert not failed, summary
    # The flooding address was refused past its cap, and told so (or closed), not left waiting.
    cap = per_address_cap()
    assert held <= cap and refused >= FLOOD - cap, summary
    assert statuses.get("429", 0) >= FLOOD - cap - statuses.get("closed", 0), summary


def burst(served: Served, source: str, forwarded_for, count: int = 200) -> list[int]:
    """`count` requests at once over one keep-alive connection from `source`, the i-th saying it
    is forwarded for `forwarded_for(i)`: their statuses."""
    statuses = []
    conn = served.connection(10, source)
    try:
        for i in range(count):
            conn.request("GET", "/no-such-page", headers={"X-Forwarded-For": forwarded_for(i)})
            response = conn.getresponse()
            body = response.read()
            statuses.append(response.status)
            if response.status == 429:
                assert response.getheader("Retry-After") == "1"
                assert json.loads(body)["error"]["code"] == "rate_limited"
    finally:
        conn.close()
    return statuses


def test_behind_your_proxies_the_limits_count_each_client(serve):
    """With PROXY_ADDRESSES, nginx counts the client a proxy of yours names in X-Forwarded-For, so
    the people behind one load balancer are not limited together; anyone else's X-Forwarded-For
    counts for nothing, or a client could pick a new address for every request."""
    served = serve(PROXY_ADDRESSES="127.8.0.0/16")
    balancer, direct = "127.8.0.1", "127.7.0.1"
    assert 429 not in burst(served, balancer, lambda i: f"198.51.100.{i % 250 + 1}")
    assert 429 in burst(served, balancer, lambda i: "203.0.113.5")
    assert 429 in burst(served, direct, lambda i: f"198.51.100.{i % 250 + 1}")
