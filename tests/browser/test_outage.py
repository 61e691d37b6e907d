"""The page through a database outage (issue 19): the app on a PostgreSQL cluster of its own,
stopped while the person records. The upload is answered 503, the page says the service is
recovering and keeps asking, then offers to send the same video again, which passes: no 500,
no attempt counted, one paid call."""
from __future__ import annotations

import threading

import pytest
import requests
from playwright.sync_api import expect
from werkzeug.serving import make_server

from ..conftest import OPERATOR_KEY, STANDIN_KEY
from ..pg import PostgresServer
from .conftest import PHONE, VERDICT_TIMEOUT_MS, _QuietHandler, next_idcard, screenshot
from .test_capture_page import agree, live_region, record, sent_to_juhe


@pytest.fixture
def outage(standin, tmp_path):
    """(the app's URL, its PostgreSQL cluster)."""
    from webapp import create_app
    cluster = PostgresServer().start()
    app = create_app({
        "DATABASE_URL": cluster.new_database(), "UPLOAD_DIR": str(tmp_path / "uploads"),
        "SECRET_KEY": "outage-browser-secret-0123456789",
        "JUHE_KEY": STANDIN_KEY, "JUHE_API_URL": standin.url, "OPERATOR_API_KEYS": OPERATOR_KEY,
        "BACKGROUND_TASKS": False, "RATELIMIT_ENABLED": False,
    })
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_port}", cluster
    server.shutdown()
    server.server_close()
    cluster.stop()


def test_an_upload_during_a_database_restart_is_sent_again_and_passes(outage, browser, standin, juhe):
    url, cluster = outage
    number = next_idcard()
    created = requests.post(f"{url}/api/v1/sessions", timeout=10, headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
                            json={"realname": "张三", "idcard": number, "mode": "silent"}).json()
    context = browser.new_context(**PHONE)
    context.grant_permissions(["camera", "microphone"], origin=url)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(created["url"])
        agree(page)
        record(page)
        down = threading.Thread(target=cluster.restart, kwargs={"down_seconds": 12}, daemon=True)
        down.start()  # the recording ends, and is uploaded, while the database is away
        expect(live_region(page)).to_contain_text("服务正在恢复", timeout=20_000)
        screenshot(page, "outage-recovering")
        down.join(60)
        expect(live_region(page)).to_contain_text("服务刚才短暂中断，视频还在", timeout=20_000)
        resend = page.get_by_role("button", name="再次上传")
        expect(resend).to_be_visible()
        resend.click()
        expect(live_region(page)).to_contain_text("通过", timeout=VERDICT_TIMEOUT_MS)
    finally:
        context.close()
    assert len(sent_to_juhe(standin, number)) == 1
    view = requests.get(f"{url}/api/v1/sessions/{created['id']}", timeout=10,
                        headers={"Authorization": f"Bearer {OPERATOR_KEY}"}).json()
    assert view["status"] == "passed" and len(view["attempts"]) == 1
