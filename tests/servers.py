"""The service as it is deployed, for tests: real gunicorn processes (gunicorn.conf.py, wsgi:app)
on a loopback port, and an HTTP client whose every request can come from its own loopback
address (127.x.y.z), so per-IP limits see many people."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from urllib3 import encode_multipart_formdata

from webapp.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`bash scripts/serve.sh`'s gunicorn, started on its own: `Gunicorn(instance, env).start()`."""

    def __init__(self, instance: Path, env: dict[str, str], workers: int = 2, port: int | None = None):
        self.instance, self.workers = Path(instance), workers
        self.port = port or free_port()
        self.log_path = self.instance.parent / f"gunicorn-{self.port}.log"
        base = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
        self.env = {**base, "INSTANCE_PATH": str(self.instance), "BIND": f"127.0.0.1:{self.port}",
                    "WEB_CONCURRENCY": str(workers), **env}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Gunicorn:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /readyz answers 200 and every worker serves; raise if the master died."""
        def ready() -> bool:
            try:
                return request("GET", self.url + "/readyz", timeout=2).status == 200
            except OSError:
                return False
        self.wait_serving(timeout, also=ready)

    def wait_serving(self, timeout: float = 60.0, also=lambda: True) -> None:
        """Until each of the master's `workers` has loaded the app and takes requests (its "Worker
        serving" line: a forked worker may still be loading the app), and `also()`; raise if the
        master died, as it does when a worker fails to boot."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            pids, log = self.worker_pids(), self.output()
            if len(pids) == self.workers and all(f"Worker serving (pid: {pid})" in log for pid in pids) \
                    and also():
                return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn not serving in {timeout} s:\n{self.output()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """The master's worker processes."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == self.proc.pid:
                    pids.append(int(entry.name))
        return sorted(pids)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_group(self.proc)
        if self.proc is not None and not self.log.closed:
            self.log.close()


def stop_group(proc: subprocess.Popen | None) -> None:
    """SIGTERM a process group started with start_new_session, SIGKILL it if it lingers."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class Reply:
    def __init__(self, status: int, body: bytes, headers: dict):
        self.status, self.body, self.headers = status, body, headers

    def json(self):
        return json.loads(self.body)


def request(method: str, url: str, *, json_body=None, fields: dict | None = None,
            headers: dict | None = None, source: str | None = None, timeout: float = 120) -> Reply:
    """One HTTP request from `source` (a loopback address such as 127.0.3.7)."""
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    path = "/" + url.split("://", 1)[1].split("/", 1)[1] if "/" in url.split("://", 1)[1] else "/"
    host, port = host_port.rsplit(":", 1)
    headers = dict(headers or {})
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    elif fields is not None:
        body, headers["Content-Type"] = encode_multipart_formdata(fields)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return Reply(response.status, response.read(), dict(response.headers))
    finally:
        conn.close()


def address(n: int) -> str:
    """The n-th distinct loopback address (n ≥ 0): 127.1.x.y."""
    return f"127.1.{n // 250}.{n % 250 + 1}"


class RedisServer:
    """A real redis-server (Debian's package, which scripts/test.sh installs) on a loopback port."""

    def __init__(self, folder: Path):
        self.folder, self.port = Path(folder), free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it (again, after kill(): on the same port, empty, as after a crash without
        persistence)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost machine would: what it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()


def worker_command() -> list[str]:
    """The worker service's command in compose.yaml (the README's worker command)."""
    import yaml
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["worker"]["command"]


class CeleryWorker:
    """The README's worker command (compose.yaml's worker service), with the web's environment."""

    def __init__(self, folder: Path, env: dict[str, str], concurrency: int = 8, name: str = "w1"):
        self.log_path = Path(folder) / f"celery-{name}.log"
        base = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
        self.env, self.name, self.concurrency = {**base, **env}, name, concurrency
        self.proc: subprocess.Popen | None = None

    def start(self) -> CeleryWorker:
        self.log = open(self.log_path, "ab")
        argv = worker_command()
        argv[0] = str(Path(sys.executable).with_name(argv[0]))
        argv[argv.index("--concurrency") + 1] = str(self.concurrency)
        self.proc = subprocess.Popen([*argv, "-n", f"{self.name}@%h", "--without-gossip", "--without-mingle"],
                                     cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while "ready." not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{self.output()[-3000:]}")
            time.sleep(0.2)
        return self

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost machine would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_group(self.proc)
        if self.proc is not None and not self.log.closed:
            self.log.close()
