"""Webhooks: signed, retried with back-off until a 2xx, the same event id each time, persisted
across a restart, and logged for the operator."""
import datetime as dt
import json
import time

import pytest

from webapp.webhooks import BACKOFF, MAX_TRIES, sign, verify_signature

from .conftest import AUTH, Person, idcard
from .loopback import Receiver

SECRET = "whsec-test-0123456789"


@pytest.fixture
def receiver():
    r = Receiver(statuses=[500, 503])
    yield r
    r.stop()


def finish_session(client, media, **body):
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1), **body})
    assert created.status_code == 201, created.get_json()
    created = created.get_json()
    Person(client, created["url"]).upload(media("safari_fmp4"))
    return created


def test_delivery_is_signed_retried_until_2xx_with_one_event_id(make_app, juhe, media, receiver):
    app = make_app(WEBHOOK_SECRET=SECRET)
    client = app.test_client()
    created = finish_session(client, media, callback_url=receiver.url)
    dispatcher = app.extensions["liveness"].dispatcher
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert dispatcher.deliver_due() == 1                 # 500
    assert dispatcher.deliver_due() == 0                 # not due yet: back-off
    assert dispatcher.deliver_due(now + dt.timedelta(seconds=BACKOFF[0] + 1)) == 1   # 503
    assert dispatcher.deliver_due(now + dt.timedelta(seconds=BACKOFF[0] + BACKOFF[1] + 2)) == 1  # 200
    assert dispatcher.deliver_due(now + dt.timedelta(days=2)) == 0
    assert len(receiver.received) == 3
    event_ids = {r["headers"]["X-Event-Id"] for r in receiver.received}
    assert len(event_ids) == 1
    bodies = {r["body"] for r in receiver.received}
    assert len(bodies) == 1
    for r in receiver.received:
        assert verify_signature(SECRET, r["body"], r["headers"]["X-Signature"])
        assert not verify_signature("wrong-secret", r["body"], r["headers"]["X-Signature"])
    payload = json.loads(bodies.pop())
    api_view = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert payload["id"] == created["id"] and payload["status"] == "passed" == api_view["status"]
    assert payload["identity"]["idcard"].count("*") == 10
    log = client.get(f"/api/v1/sessions/{created['id']}/webhooks", headers=AUTH).get_json()["deliveries"]
    assert log[0]["state"] == "delivered" and [t["status_code"] for t in log[0]["log"]] == [500, 503, 200]


def test_signature_format_is_the_contracts():
    header = sign(SECRET, b'{"a":1}', 1700000000)
    t, v1 = header.split(",")
    assert t == "t=1700000000" and v1.startswith("v1=") and len(v1) == 3 + 64
    import hashlib
    import hmac
    assert v1[3:] == hmac.new(SECRET.encode(), b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert not verify_signature(SECRET, b'{"a":1}', header, now=1700000000 + 3600)


def test_pending_delivery_survives_a_restart(make_app, juhe, media, tmp_path):
    down = Receiver(statuses=[502])
    try:
        app = make_app(WEBHOOK_SECRET=SECRET)
        finish_session(app.test_client(), media, callback_url=down.url)
        app.extensions["liveness"].dispatcher.deliver_due()
        # A new process on the same database picks the delivery up once it is due.
        restarted = make_app(WEBHOOK_SECRET=SECRET)
        later = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=BACKOFF[0] + 1)
        assert restarted.extensions["liveness"].dispatcher.deliver_due(later) == 1
        assert len(down.received) == 2
        assert down.received[0]["headers"]["X-Event-Id"] == down.received[1]["headers"]["X-Event-Id"]
    finally:
        down.stop()


def test_retries_span_at_least_six_tries_over_an_hour():
    assert MAX_TRIES >= 6 and sum(BACKOFF[:MAX_TRIES - 1]) >= 3600


def test_a_receiver_that_never_answers_2xx_ends_failed_after_the_last_try(make_app, juhe, media):
    never = Receiver(statuses=[500] * 50)
    try:
        app = make_app(WEBHOOK_SECRET=SECRET)
        client = app.test_client()
        created = finish_session(client, media, callback_url=never.url)
        dispatcher = app.extensions["liveness"].dispatcher
        when = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        for _ in range(MAX_TRIES + 2):
            dispatcher.deliver_due(when)
            when += dt.timedelta(days=1)
        assert len(never.received) == MAX_TRIES
        log = client.get(f"/api/v1/sessions/{created['id']}/webhooks", headers=AUTH).get_json()["deliveries"]
        assert log[0]["state"] == "failed" and log[0]["tries"] == MAX_TRIES
    finally:
        never.stop()


def test_background_thread_delivers_without_being_asked(make_app, juhe, media, receiver):
    receiver.statuses.clear()
    app = make_app(WEBHOOK_SECRET=SECRET, BACKGROUND_TASKS=True)
    finish_session(app.test_client(), media, callback_url=receiver.url)
    deadline = time.monotonic() + 10
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(receiver.received) == 1
