"""With a broker (CELERY_BROKER_URL, a real redis-server): the upload answers at once, a Celery
worker (the README's worker command) pays for the attempt and records it, and a worker killed
mid-call costs neither a second paid call nor more than 30 s of the person's time."""
from __future__ import annotations

import time

import pytest

from .conftest import AUTH, OPERATOR_KEY, STANDIN_KEY, idcard, rows
from .loopback import Receiver
from .servers import CeleryWorker, Gunicorn, RedisServer, address, request
from .test_faults import INTERRUPTED_ZH, until


@pytest.fixture
def deployment(tmp_path, standin, database_url):
    """Redis, two gunicorn workers and a Celery worker sharing one database."""
    redis = RedisServer(tmp_path / "redis").start()
    hook = Receiver()
    env = {"JUHE_KEY": STANDIN_KEY, "JUHE_API_URL": standin.url, "SECRET_KEY": "celery-secret-0123456789",
           "OPERATOR_API_KEYS": OPERATOR_KEY, "WEBHOOK_SECRET": "celery-hook-secret",
           "WEBHOOK_ALLOW_PRIVATE": "true", "DATABASE_URL": database_url,
           "CELERY_BROKER_URL": redis.url, "CELERY_VISIBILITY_SECONDS": "5",
           "INSTANCE_PATH": str(tmp_path / "instance")}
    web = Gunicorn(tmp_path / "instance", env, workers=2).start()
    workers = [CeleryWorker(tmp_path, env).start()]

    class Deployment:
        def __init__(self):
            self.web, self.workers, self.hook, self.env = web, workers, hook, env

        def new_worker(self, name: str) -> CeleryWorker:
            worker = CeleryWorker(tmp_path, env, name=name).start()
            workers.append(worker)
            return worker

        def person(self, n: int, **body) -> tuple[dict, str]:
            created = request("POST", web.url + "/api/v1/sessions", headers=AUTH,
                              json_body={"realname": "张三", "idcard": idcard(60 + n), "mode": "silent",
                                         **body}).json()
            return created, created["url"].split(str(web.port), 1)[1]

        def upload(self, path: str, video: bytes, source: str):
            challenge = request("POST", f"{web.url}{path}/challenge", source=source).json()["challenge"]
            return request("POST", f"{web.url}{path}/upload", source=source,
                           fields={"challenge": challenge["id"], "video": ("v.mp4", video, "video/mp4")})

        def state(self, path: str, wait: float = 0) -> dict:
            return request("GET", f"{web.url}{path}/state" + (f"?wait={wait:g}" if wait else "")).json()

    yield Deployment()
    for worker in workers:
        worker.stop()
    web.stop()
    hook.stop()
    redis.stop()


def test_with_a_broker_the_upload_answers_at_once_and_a_worker_gives_the_verdict(deployment, juhe, media,
                                                                                database_url):
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 2.0
    created, path = deployment.person(1, callback_url=deployment.hook.url)
    answer = deployment.upload(path, media("safari_fmp4").read_bytes(), address(1))
    assert answer.status == 202 and answer.json()["state"]["in_flight"] and "outcome" not in answer.json()
    # The page's one question, held at the server until the worker recorded the verdict (not
    # until the 15 s it may wait): Juhe answers in 2 s.
    asked = time.monotonic()
    state = deployment.state(path, wait=15)
    assert state["status"] == "passed" and state["last"]["result"] == "passed" and not state["in_flight"]
    assert time.monotonic() - asked < 12
    assert len(juhe.requests) == 1
    view = request("GET", f"{deployment.web.url}/api/v1/sessions/{created['id']}", headers=AUTH).json()
    assert [a["charged"] for a in view["attempts"]] == [True]
    assert rows(database_url, "select count(*) from queued_videos") == [(0,)]  # used: gone
    assert until(lambda: len(deployment.hook.received) == 1, 20)
    assert "liveness.verify" in deployment.workers[0].output()


def test_a_worker_killed_mid_call_never_pays_twice_and_frees_the_person(deployment, juhe, media):
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 60.0
    created, path = deployment.person(2)
    assert deployment.upload(path, media("safari_fmp4").read_bytes(), address(2)).status == 202
    assert until(lambda: juhe.requests, 30), "the worker never called Juhe"
    deployment.workers[0].kill()
    killed = time.monotonic()
    replacement = deployment.new_worker("w2")  # the dead worker's task comes to it again
    # The page's waiting questions: one that waits past the lease's end answers then.
    questions = 0
    while (state := deployment.state(path, wait=15))["in_flight"] and time.monotonic() - killed < 40:
        questions += 1
    assert not state["in_flight"] and time.monotonic() - killed <= 30 and questions <= 2
    assert INTERRUPTED_ZH in state["last"]["message"] and state["attempts_left"] == 3
    assert until(lambda: "delivered again" in replacement.output(), 30), replacement.output()[-2000:]
    assert len(juhe.requests) == 1
    view = request("GET", f"{deployment.web.url}/api/v1/sessions/{created['id']}", headers=AUTH).json()
    assert [a["charged"] for a in view["attempts"]] == [None]

    juhe.mode = None  # the person goes on
    assert deployment.upload(path, media("safari_fmp4").read_bytes(), address(2)).status == 202
    assert until(lambda: deployment.state(path)["status"] == "passed", 30)
    assert len(juhe.requests) == 2


def test_a_juhe_call_outlasting_the_visibility_timeout_is_not_sent_again(deployment, juhe, media):
    # The broker hands a task still running after CELERY_VISIBILITY_SECONDS (5 s here) to a
    # worker again: that copy must find its attempt taken and do nothing, however long Juhe is.
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 14.0
    second = deployment.new_worker("w2")
    created, path = deployment.person(4)
    assert deployment.upload(path, media("safari_fmp4").read_bytes(), address(4)).status == 202
    assert until(lambda: "delivered again" in deployment.workers[0].output() + second.output(), 25), \
        second.output()[-2000:]
    assert until(lambda: deployment.state(path)["status"] == "passed", 30)
    assert len(juhe.requests) == 1
    view = request("GET", f"{deployment.web.url}/api/v1/sessions/{created['id']}", headers=AUTH).json()
    assert [a["charged"] for a in view["attempts"]] == [True]


def test_a_broker_that_is_down_gives_the_session_back_at_once(make_app, juhe, media, database_url):
    """CELERY_BROKER_URL set, nothing listening: the upload is answered with words to act on,
    nothing is sent, nothing is counted, and the person can record again at once."""
    from .conftest import Person
    from .servers import free_port
    client = make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0").test_client()
    created = client.post("/api/v1/sessions", headers=AUTH,
                          json={"realname": "张三", "idcard": idcard(70)}).get_json()
    person = Person(client, created["url"])
    answer = person.upload(media("safari_fmp4"))
    assert answer.status_code == 200 and INTERRUPTED_ZH in answer.get_json()["outcome"]["message"]
    state = person.state()
    assert not state["in_flight"] and state["attempts_left"] == 3 and juhe.requests == []
    assert rows(database_url, "select count(*) from queued_videos") == [(0,)]


def test_with_a_broker_a_video_sent_through_the_api_is_verified_by_a_worker(deployment, juhe, media):
    """The operator's own upload (issue 12) takes the same queue: 202 at once, the worker pays
    once, the session's state and webhook say the rest."""
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 1.0
    created, _ = deployment.person(3, callback_url=deployment.hook.url)
    drawn = request("POST", f"{deployment.web.url}/api/v1/sessions/{created['id']}/challenge", headers=AUTH)
    answer = request("POST", f"{deployment.web.url}/api/v1/sessions/{created['id']}/video", headers=AUTH,
                     fields={"challenge": drawn.json()["challenge"]["id"],
                             "video": ("v.mp4", media("safari_fmp4").read_bytes(), "video/mp4")})
    assert answer.status == 202, answer.body
    assert answer.json()["outcome"] is None and answer.json()["session"]["status"] == "pending"
    view = until(lambda: (v := request("GET", f"{deployment.web.url}/api/v1/sessions/{created['id']}",
                                       headers=AUTH).json()) and v["status"] != "pending" and v, 30)
    assert view and view["status"] == "passed" and [a["charged"] for a in view["attempts"]] == [True]
    assert len(juhe.requests) == 1
    assert until(lambda: len(deployment.hook.received) == 1, 20)
