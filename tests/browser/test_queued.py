"""The capture page against the many-machine deployment: gunicorn with a Celery broker (a real
redis-server) and a Celery worker. The upload is answered 202 at once; the page asks for the
session's state once, and is answered when the worker recorded its verdict."""
from __future__ import annotations

from playwright.sync_api import expect

from ..conftest import OPERATOR_KEY, STANDIN_KEY
from ..servers import CeleryWorker, Gunicorn, RedisServer, request
from .conftest import PHONE, next_idcard
from .test_capture_page import agree, expect_passed, live_region, record, sent_to_juhe


def test_with_a_broker_the_page_follows_the_state_to_the_workers_verdict(browser, standin, tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    env = {"JUHE_KEY": STANDIN_KEY, "JUHE_API_URL": standin.url, "SECRET_KEY": "queued-secret-0123456789",
           "OPERATOR_API_KEYS": OPERATOR_KEY, "CELERY_BROKER_URL": redis.url,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}"}
    web = Gunicorn(tmp_path / "instance", env, workers=1).start()
    worker = CeleryWorker(tmp_path, env, concurrency=2).start()
    context = browser.new_context(**PHONE)
    try:
        origin = f"http://localhost:{web.port}"  # localhost: a secure context for the camera
        number = next_idcard()
        created = request("POST", origin + "/api/v1/sessions", headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
                          json_body={"realname": "张三", "idcard": number, "mode": "silent"}).json()
        standin.script[number] = standin.SLOW
        context.grant_permissions(["camera", "microphone"], origin=origin)
        page = context.new_page()
        page.set_default_timeout(15_000)
        uploads, questions = [], []
        page.on("response", lambda r: uploads.append(r.status) if r.url.endswith("/upload") else None)
        page.on("request", lambda r: questions.append(r.url) if "/state" in r.url and uploads else None)
        page.goto(created["url"])
        agree(page)
        record(page)
        expect(live_region(page)).to_contain_text("正在核验", timeout=20_000)
        expect_passed(page)
        assert uploads == [202] and len(sent_to_juhe(standin, number)) == 1
        # One question, held at the server until the worker recorded the verdict (wake-ups).
        assert [url.rsplit("/", 1)[1] for url in questions] == ["state?wait=15"]
        assert "liveness.verify" in worker.output()
    finally:
        context.close()
        worker.stop()
        web.stop()
        redis.stop()
