"""The README's serve command for real: nginx in front of gunicorn, so slow uploads cannot starve
anyone, TLS with --https, and one supervisor for both processes."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import idcard

ROOT = Path(__file__).resolve().parents[1]
SLOW_CLIENTS = 50
ANSWER_WITHIN = 2.0   # seconds: what "keeps answering others" means here
# A small gunicorn, the same with and without the proxy: one worker of 4 threads, which 50 slow
# clients outnumber many times over. (With several workers, gunicorn alone is starved only
# mostly: a probe that a worker with a free thread happens to accept is answered.)
SMALL = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "4"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sandbox_env(tmp_path: Path, port: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUHE_", "OPERATOR_", "PROXY_", "RATELIMIT_", "TLS_"))}
    env.update(BIND=f"127.0.0.1:{port}", INSTANCE_PATH=str(tmp_path / "instance"))
    env.update(extra)
    return env


class Served:
    """A process group started for the test (serve.sh, or gunicorn alone), stopped at the end."""

    def __init__(self, argv: list[str], env: dict, log: Path, port: int, https: bool = False):
        self.port, self.https, self.log = port, https, log
        self.out = open(log, "wb")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def connection(self, timeout: float, source: str = "127.0.0.1") -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               source_address=(source, 0),
                                               context=ssl._create_unverified_context())
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          source_address=(source, 0))

    def request(self, method: str, path: str, timeout: float = 10.0, body: bytes | None = None,
                headers: dict | None = None, source: str = "127.0.0.1"):
        conn = self.connection(timeout, source)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.request("GET", "/healthz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"did not come up:\n{self.output()}"
            time.sleep(0.3)

    def output(self) -> str:
        self.out.flush()
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)   # whatever is left of the group
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.out.close()
        return self.proc.returncode


@pytest.fixture
def serve(tmp_path):
    """`serve(*args, **env)` → the README's `bash scripts/serve.sh`, up and answering."""
    started: list[Served] = []

    def start(*args: str, **env: str) -> Served:
        port = free_port()
        served = Served(["bash", "scripts/serve.sh", *args], sandbox_env(tmp_path, port, **env),
                        tmp_path / f"serve-{len(started)}.log", port, https="--https" in args)
        started.append(served)
        served.wait_ready()
        return served
    yield start
    for served in started:
        served.stop()


@pytest.fixture
def gunicorn_alone(tmp_path):
    port = free_port()
    served = Served([str(ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                    sandbox_env(tmp_path, port, **SMALL), tmp_path / "gunicorn.log", port)
    served.wait_ready()
    yield served
    served.stop()


def new_session_path(served: Served) -> str:
    body = json.dumps({"realname": "张三", "idcard": idcard(1)}).encode()
    status, _, answer = served.request(
        "POST", "/api/v1/sessions", body=body,
        headers={"Authorization": "Bearer sandbox-operator-key", "Content-Type": "application/json"})
    assert status == 201, answer
    return "/v/" + json.loads(answer)["url"].split("/v/", 1)[1]


class SlowUploads:
    """`count` clients, each from its own loopback address, POSTing an upload whose 10 MB body
    comes at about 100 bytes a second."""

    def __init__(self, served: Served, path: str, count: int = SLOW_CLIENTS):
        self.sockets: list[socket.socket] = []
        self.stopped = threading.Event()
        self.sent = 0
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", served.port), timeout=10,
                                         source_address=(f"127.0.{1 + i // 200}.{10 + i % 200}", 0))
            if served.https:
                s = ssl._create_unverified_context().wrap_socket(s, server_hostname="localhost")
            s.sendall((f"POST {path}/upload HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
                       "Content-Type: multipart/form-data; boundary=slowslowslow\r\n"
                       "Content-Length: 10000000\r\n\r\n"
                       "--slowslowslow\r\nContent-Disposition: form-data; name=\"video\"; "
                       "filename=\"v.webm\"\r\nContent-Type: video/webm\r\n\r\n").encode())
            self.sockets.append(s)
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stopped.wait(0.1):
            for s in self.sockets:
                try:
                    s.sendall(b"x" * 10)     # 10 bytes every 0.1 s: 100 B/s per client
                    self.sent += 10
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        for s in self.sockets:
            s.close()


def latency(served: Served, path: str, timeout: float) -> float:
    """Seconds until `path` answered 200 (or `timeout` + 1 when it did not answer in time)."""
    start = time.monotonic()
    try:
        status, _, _ = served.request("GET", path, timeout=timeout)
    except TimeoutError:
        return timeout + 1
    assert status == 200, (path, status)
    return time.monotonic() - start


def under_attack(served: Served, timeout: float) -> dict[str, float]:
    path = new_session_path(served)
    slow = SlowUploads(served, path)
    try:
        time.sleep(3)   # every slow client has sent its headers and some body by now
        return {"/healthz": latency(served, "/healthz", timeout),
                "page": latency(served, path, timeout),
                "/": latency(served, "/", timeout),
                "/healthz again": latency(served, "/healthz", timeout)}
    finally:
        slow.close()


@pytest.mark.parametrize("config", [{}, SMALL], ids=["readme-defaults", "one-worker-4-threads"])
def test_slow_uploads_do_not_starve_the_served_app(serve, record_property, config):
    served = serve(**config)
    seen = under_attack(served, timeout=10)
    record_property("latency_with_proxy", seen)
    print(f"with nginx in front ({config or 'defaults'}), under {SLOW_CLIENTS} slow uploads: {seen}")
    assert all(v < ANSWER_WITHIN for v in seen.values()), seen


def test_slow_uploads_do_not_starve_the_https_serve(serve):
    served = serve("--https", **SMALL)
    seen = under_attack(served, timeout=10)
    assert all(v < ANSWER_WITHIN for v in seen.values()), seen


def test_without_the_proxy_slow_uploads_do_starve_gunicorn(gunicorn_alone, record_property):
    """The attack the proxy is for is real: gunicorn alone (the same config) stops answering."""
    seen = under_attack(gunicorn_alone, timeout=5)
    record_property("latency_without_proxy", seen)
    print(f"gunicorn alone ({SMALL}), under {SLOW_CLIENTS} slow uploads: {seen}")
    assert all(v > ANSWER_WITHIN for v in seen.values()), seen


def test_the_app_trusts_the_proxy_for_scheme_and_only_the_proxy(serve):
    served = serve("--https")
    status, headers, _ = served.request("GET", "/healthz")
    assert status == 200 and headers["Server"] == "nginx"
    assert "max-age" in headers.get("Strict-Transport-Security", "")   # X-Forwarded-Proto: https
    plain = serve()
    # A client cannot pose as https (or as another host or address) through nginx.
    status, headers, _ = plain.request("GET", "/healthz", headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on", "X-Forwarded-Host": "evil.example"})
    assert status == 200 and "Strict-Transport-Security" not in headers
    path = new_session_path(plain)
    status, _, page = plain.request("GET", path, headers={"X-Forwarded-Host": "evil.example"})
    assert status == 200 and b"evil.example" not in page


def test_nginx_buffers_the_body_and_refuses_what_is_too_large(serve):
    served = serve(MAX_UPLOAD_MB="1")
    path = new_session_path(served)
    status, _, _ = served.request("POST", f"{path}/upload", body=b"x" * (3 * 1024 * 1024),
                                  headers={"Content-Type": "application/octet-stream"})
    assert status == 413
    # A body within the limit reaches the app whole, which answers it (no video: 4xx JSON).
    status, headers, body = served.request("POST", f"{path}/upload", body=b"x" * 1000,
                                           headers={"Content-Type": "application/octet-stream"})
    assert 400 <= status < 500 and headers["Content-Type"].startswith("application/json"), body
    # nginx logged the refusal with the request line; the page token is redacted from it.
    token = path.rsplit("/", 1)[1]
    deadline = time.monotonic() + 5
    while "too large body" not in served.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "too large body" in served.output() and "/v/***" in served.output()
    assert token not in served.output()


def children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.append((int(entry.name), name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_serve_stops_both_on_sigterm(serve):
    served = serve()
    kids = children(served.proc.pid)
    assert {name for _, name in kids} >= {"nginx", "gunicorn"}, kids
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=90) == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid, _ in kids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid, _ in kids), kids


@pytest.mark.parametrize("victim", ["nginx", "gunicorn"])
def test_when_one_process_dies_serve_stops_the_other(serve, victim):
    served = serve()
    kids = {name: pid for pid, name in children(served.proc.pid)}
    os.kill(kids[victim], signal.SIGKILL)
    assert served.proc.wait(timeout=90) == 128 + signal.SIGKILL   # the status of the one that died
    other = kids["gunicorn" if victim == "nginx" else "nginx"]
    deadline = time.monotonic() + 10
    while alive(other) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(other)
    assert f"{victim} exited" in served.output()


def _served_certificate(served: Served) -> dict:
    """The certificate the served port presents: its subject, serial, days valid and IP names."""
    context = ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-serial", "-startdate",
                           "-enddate", "-ext", "subjectAltName"], input=der, capture_output=True,
                          check=True).stdout.decode()
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and ":" not in line.split("=")[0])
    dates = [ssl.cert_time_to_seconds(fields[k]) for k in ("notBefore", "notAfter")]
    return {"subject": fields["subject"], "serial": fields["serial"], "days": (dates[1] - dates[0]) / 86400,
            "ips": set(re.findall(r"IP Address:([0-9.]+)", text))}


@pytest.mark.parametrize("stale", ["another network", "expiring"])
def test_https_on_loopback_says_so_and_renews_a_stale_certificate(serve, tmp_path, stale):
    """Bound to 127.0.0.1, --https offers no LAN address a phone could not reach; a certificate
    made for another network, or about to expire, is made again instead of being served."""
    instance = tmp_path / "instance"
    instance.mkdir()
    san, days = ("IP:10.9.9.9", "30") if stale == "another network" else ("DNS:localhost,IP:127.0.0.1", "1")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days,
                    "-subj", "/CN=old", "-addext", f"subjectAltName={san}",
                    "-keyout", str(instance / "tls-key.pem"), "-out", str(instance / "tls-cert.pem")],
                   check=True, capture_output=True)
    served = serve("--https")
    out = served.output()
    assert f"Open https://127.0.0.1:{served.port}/ on this machine" in out
    assert "phone on the same network" not in out
    cert = _served_certificate(served)
    assert cert["ips"] == {"127.0.0.1"} and "liveness-dev" in cert["subject"] and cert["days"] >= 29, cert
    # A certificate that still fits is kept, not made again at every start.
    served.stop()
    again = serve("--https")
    assert "making a self-signed certificate" not in again.output()
    assert _served_certificate(again)["serial"] == cert["serial"]
