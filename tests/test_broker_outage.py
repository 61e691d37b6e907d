"""Redis, the Celery broker, SIGKILLed while people upload and started again on the same port 10 s
later, empty (no persistence, as tests/servers.py runs it). Real redis-server, real gunicorn,
real Celery workers (the README's worker command), the Juhe stand-in. The outage costs time,
never a worker, a queued attempt or a second paid call: the workers reconnect, the attempts
whose tasks Redis lost are published again (webapp/delivery/broker.py), every person gets a verdict,
Juhe is paid once per person, and /readyz says 503 while verification cannot run."""
from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from .conftest import AUTH, OPERATOR_KEY, STANDIN_KEY, idcard
from .servers import ROOT, CeleryWorker, Gunicorn, RedisServer, address, request
from .test_faults import until

OUTAGE_SECONDS = 10


@pytest.fixture
def deploy(tmp_path, standin, database_url):
    """`deploy(concurrency)`: Redis, two gunicorn workers and two Celery workers."""
    started: list = []

    def make(concurrency: int):
        redis = RedisServer(tmp_path / "redis").start()
        started.append(redis)
        env = {"JUHE_KEY": STANDIN_KEY, "JUHE_API_URL": standin.url,
               "SECRET_KEY": "outage-secret-0123456789", "OPERATOR_API_KEYS": OPERATOR_KEY,
               "DATABASE_URL": database_url, "CELERY_BROKER_URL": redis.url,
               "CELERY_VISIBILITY_SECONDS": "5", "INSTANCE_PATH": str(tmp_path / "instance")}
        web = Gunicorn(tmp_path / "instance", env, workers=2).start()
        started.append(web)
        workers = []
        for n in (1, 2):
            workers.append(CeleryWorker(tmp_path, env, concurrency=concurrency, name=f"w{n}").start())
            started.append(workers[-1])
        return Deployment(redis, web, workers)

    yield make
    for process in reversed(started):
        process.stop()


class Deployment:
    def __init__(self, redis: RedisServer, web: Gunicorn, workers: list[CeleryWorker]):
        self.redis, self.web, self.workers = redis, web, workers
        self.people: list[str] = []  # each person's page path; person n uploads from address(n)

    def new_people(self, count: int) -> range:
        first = len(self.people)
        for n in range(first, first + count):
            created = request("POST", self.web.url + "/api/v1/sessions", headers=AUTH,
                              json_body={"realname": "张三", "idcard": idcard(100 + n), "mode": "silent"})
            self.people.append(created.json()["url"].split(str(self.web.port), 1)[1])
        return range(first, first + count)

    def upload(self, n: int, video: bytes) -> int:
        path, source = self.people[n], address(n)
        challenge = request("POST", f"{self.web.url}{path}/challenge", source=source).json()["challenge"]
        return request("POST", f"{self.web.url}{path}/upload", source=source,
                       fields={"challenge": challenge["id"], "video": ("v.mp4", video, "video/mp4")}).status

    def upload_all(self, people: range, video: bytes) -> list[int]:
        with ThreadPoolExecutor(len(people)) as pool:
            return list(pool.map(lambda n: self.upload(n, video), people))

    def readyz(self) -> int:
        try:
            return request("GET", self.web.url + "/readyz", timeout=5).status
        except OSError:
            return 0

    def outage(self) -> list[int]:
        """SIGKILL Redis, keep it down OUTAGE_SECONDS, start it again on the same port (empty).
        What /readyz answered meanwhile, every half second."""
        self.redis.kill()
        killed, answers = time.monotonic(), []
        while time.monotonic() - killed < OUTAGE_SECONDS:
            answers.append(self.readyz())
            time.sleep(0.5)
        self.redis.start()
        return answers

    def verdicts(self, people: range) -> list[str]:
        return [request("GET", f"{self.web.url}{self.people[n]}/state", source=address(n)).json()
                .get("status", "?") for n in people]

    def all_settled(self, people: range, seconds: float) -> list[str]:
        """The people's statuses once none is pending (or after `seconds`)."""
        until(lambda: "pending" not in self.verdicts(people), seconds, every=1)
        return self.verdicts(people)

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}:\n{w.output()[-4000:]}" for w in self.workers)

    def alive(self) -> list[bool]:
        return [w.proc.poll() is None for w in self.workers]


def paid(juhe) -> Counter:
    return Counter(r["form"].get("idcard") for r in juhe.requests)


def healthcheck(worker: CeleryWorker) -> subprocess.CompletedProcess:
    """compose.yaml's healthcheck of the worker service, run for this worker."""
    test = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "celery@$$HOSTNAME" in test[1]
    argv = shlex.split(test[1].replace("celery@$$HOSTNAME", f"{worker.name}@{socket.gethostname()}"))
    argv[0] = str(Path(sys.executable).with_name(argv[0]))
    return subprocess.run(argv, cwd=ROOT, env=worker.env, capture_output=True, text=True, timeout=60)


def test_workers_outlive_redis_killed_while_they_call_juhe(deploy, juhe, media):
    """The README's workers (16 threads each) with calls to Juhe in flight, waiting for more
    tasks, when Redis dies: on celery 5.7.0 each exited ("Unrecoverable error: AttributeError"),
    and a later upload stayed `processing` for good. Now they reconnect and go on."""
    deployment = deploy(concurrency=16)
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 6.0
    video = media("safari_fmp4").read_bytes()
    first = deployment.new_people(16)
    assert deployment.upload_all(first, video) == [202] * 16
    assert until(lambda: len(juhe.requests) == 16, 30), len(juhe.requests)
    assert deployment.readyz() == 200

    while_down = deployment.outage()  # the calls in flight are answered meanwhile
    assert until(lambda: deployment.readyz() == 200, 10), "not ready with Redis back"
    assert deployment.alive() == [True, True], deployment.logs()
    # /readyz said so while Redis was away (from its first look after the kill: it keeps an
    # answer for 2 s).
    assert set(while_down[5:]) == {503}, while_down

    # Someone uploads after the outage: a worker takes it.
    juhe.slow_seconds = 1.0
    later = deployment.new_people(1)
    assert deployment.upload_all(later, video) == [202]
    everyone = range(0, later.stop)
    assert deployment.all_settled(everyone, 40) == ["passed"] * len(everyone), deployment.logs()
    assert paid(juhe) == Counter({idcard(100 + n): 1 for n in everyone})
    assert deployment.alive() == [True, True], deployment.logs()
    # And compose's healthcheck, which asks each worker itself through Redis, finds them connected.
    for worker in deployment.workers:
        checked = healthcheck(worker)
        assert checked.returncode == 0 and "pong" in checked.stdout, checked.stdout + checked.stderr


def test_tasks_lost_with_redis_are_published_again_and_paid_once(deploy, juhe, media):
    """Six threads in all: twelve people, six calls in flight and six tasks waiting in Redis
    when it dies. Those six come back from the database (webapp/delivery/broker.py) once Redis does."""
    deployment = deploy(concurrency=3)
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 8.0
    video = media("safari_fmp4").read_bytes()
    people = deployment.new_people(12)
    assert deployment.upload_all(people, video) == [202] * 12
    assert until(lambda: len(juhe.requests) >= 6, 30), len(juhe.requests)
    in_flight = len(juhe.requests)
    assert in_flight < 12  # some tasks were waiting in Redis

    while_down = deployment.outage()
    back = time.monotonic()
    assert set(while_down[5:]) == {503}, while_down
    verdicts = deployment.all_settled(people, 60)
    assert verdicts == ["passed"] * 12, (verdicts, deployment.logs())
    print(f"{12 - in_flight} tasks lost with Redis; every verdict {time.monotonic() - back:.0f} s after it came back")
    assert paid(juhe) == Counter({idcard(100 + n): 1 for n in people})  # nothing twice, nothing lost
    assert "published again" in deployment.web.output()
    assert deployment.alive() == [True, True], deployment.logs()


def test_readyz_says_when_the_broker_cannot_be_reached(make_app):
    """CELERY_BROKER_URL set, and what answers there closes every connection: not ready, and why;
    asked once, then answered from memory (a load balancer's probes do not each wait on Redis)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def refuse() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=refuse, daemon=True).start()
    try:
        client = make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{listener.getsockname()[1]}/0").test_client()
        answers = [client.get("/readyz") for _ in range(5)]
        # One question (redis-py may connect twice for it: one retry), then answers from memory;
        # five questions would be five connections at least. (Counted once all are answered: the
        # accepting thread may count the first question's second connection a moment late.)
        assert 1 <= len(accepted) <= 2, accepted
    finally:
        listener.close()
    assert {a.status_code for a in answers} == {503}
    assert "broker unavailable" in answers[0].get_json()["reason"]
