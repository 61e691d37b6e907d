"""Webhooks: signed, retried with back-off until a 2xx, the same event id each time, persisted
across a restart, and logged for the operator."""
import datetime as dt
import json
import logging
import time

import pytest

from webapp.delivery.webhooks import BACKOFF, MAX_TRIES, sign, verify_signature
from webapp.settings import ConfigurationError, load_settings

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
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
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


# -- secret rotation (issue 22, part 5) ----------------------------------------------------------
PREVIOUS_SECRET = "whsec-previous-9876543210"


def test_during_a_rotation_every_delivery_opens_with_the_new_or_the_previous_secret(make_app, juhe, media, receiver,
                                                                                     caplog):
    receiver.statuses.clear()
    app = make_app(WEBHOOK_SECRET=SECRET, WEBHOOK_SECRET_PREVIOUS=PREVIOUS_SECRET)
    with caplog.at_level(logging.DEBUG):
        finish_session(app.test_client(), media, callback_url=receiver.url)
        assert app.extensions["liveness"].dispatcher.deliver_due() == 1
        logging.getLogger("someone.careless").warning("rotating from %s", PREVIOUS_SECRET)
    body, header = receiver.received[0]["body"], receiver.received[0]["headers"]["X-Signature"]
    t, first, second = header.split(",")             # t=…,v1=<with the new>,v1=<with the previous>
    assert t.startswith("t=") and first.startswith("v1=") and second.startswith("v1=") and first != second
    assert header == sign(SECRET, body, int(t[2:]), PREVIOUS_SECRET)
    assert verify_signature(SECRET, body, header)            # a receiver already on the new secret
    assert verify_signature(PREVIOUS_SECRET, body, header)   # and one still on the previous
    assert not verify_signature("wrong-secret", body, header)
    assert not verify_signature(PREVIOUS_SECRET, body + b" ", header)
    assert not verify_signature(PREVIOUS_SECRET, body, header, now=int(t[2:]) + 301)
    # The previous secret is configured, never logged (a careless log line is redacted too).
    assert PREVIOUS_SECRET not in "\n".join(r.getMessage() for r in caplog.records)


def test_after_the_rotation_only_the_new_secret_opens_a_delivery(make_app, juhe, media, receiver):
    receiver.statuses.clear()
    app = make_app(WEBHOOK_SECRET=SECRET, WEBHOOK_SECRET_PREVIOUS="  ")   # blank: unset
    finish_session(app.test_client(), media, callback_url=receiver.url)
    assert app.extensions["liveness"].dispatcher.deliver_due() == 1
    body, header = receiver.received[0]["body"], receiver.received[0]["headers"]["X-Signature"]
    assert header.count("v1=") == 1
    assert verify_signature(SECRET, body, header) and not verify_signature(PREVIOUS_SECRET, body, header)


@pytest.mark.parametrize("env, problem", [
    ({"WEBHOOK_SECRET_PREVIOUS": PREVIOUS_SECRET}, "needs WEBHOOK_SECRET"),
    ({"WEBHOOK_SECRET": SECRET, "WEBHOOK_SECRET_PREVIOUS": SECRET}, "must differ"),
])
def test_a_previous_secret_alone_or_equal_to_the_new_one_stops_the_service(monkeypatch, tmp_path, env, problem):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError, match=f"WEBHOOK_SECRET_PREVIOUS.*{problem}") as stopped:
        load_settings(tmp_path)
    assert PREVIOUS_SECRET not in str(stopped.value) and SECRET not in str(stopped.value)


def test_a_receiver_accepts_any_matching_v1_in_any_order():
    body, at = b'{"a":1}', 1700000000
    both = sign(SECRET, body, at, PREVIOUS_SECRET)
    t, new, old = both.split(",")
    assert verify_signature(PREVIOUS_SECRET, body, f"{t},{old},{new}", now=at)
    assert verify_signature(SECRET, body, f"{t}, {old}, {new}", now=at)
    assert not verify_signature(SECRET, body, f"{t},{t},{new}", now=at)      # one timestamp only
    assert not verify_signature(SECRET, body, f"{new},{old}", now=at)        # none at all
    assert not verify_signature(SECRET, body, "garbage", now=at)


def test_pending_delivery_survives_a_restart(make_app, juhe, media, tmp_path):
    down = Receiver(statuses=[502])
    try:
        app = make_app(WEBHOOK_SECRET=SECRET)
        finish_session(app.test_client(), media, callback_url=down.url)
        app.extensions["liveness"].dispatcher.deliver_due()
        # A new process on the same database picks the delivery up once it is due.
        restarted = make_app(WEBHOOK_SECRET=SECRET)
        later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=BACKOFF[0] + 1)
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
        when = dt.datetime.now(dt.UTC).replace(tzinfo=None)
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
    try:
        finish_session(app.test_client(), media, callback_url=receiver.url)
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(receiver.received) == 1
    finally:
        app.extensions["liveness_background_stop"]()  # not past this test's database


# -- where a delivery may go (issue 7, item 8) ---------------------------------------------------
PUBLIC_IP = "93.184.215.14"


class Resolutions:
    """An injected resolver: `table[host]` is what the name resolves to now; `calls` what was asked."""

    def __init__(self, table):
        self.table, self.calls = dict(table), []

    def __call__(self, host, port):
        self.calls.append((host, port))
        if host not in self.table:
            raise OSError("does not resolve")
        return list(self.table[host])


def _deliveries(client, session_id):
    return client.get(f"/api/v1/sessions/{session_id}/webhooks", headers=AUTH).get_json()["deliveries"]


def test_the_app_tells_its_dispatcher_whether_private_targets_are_allowed(make_app):
    assert make_app(WEBHOOK_SECRET=SECRET, WEBHOOK_ALLOW_PRIVATE=False).extensions["liveness"].dispatcher.allow_private is False
    assert make_app(WEBHOOK_SECRET=SECRET, WEBHOOK_ALLOW_PRIVATE=True).extensions["liveness"].dispatcher.allow_private is True


def test_a_dispatcher_refuses_internal_targets_unless_told_otherwise(make_app, juhe, media, receiver):
    from webapp.delivery.webhooks import Dispatcher
    receiver.statuses.clear()
    app = make_app(WEBHOOK_SECRET=SECRET)
    created = finish_session(app.test_client(), media, callback_url=receiver.url)
    assert Dispatcher(app.extensions["liveness"].store, SECRET).deliver_due() == 1
    assert receiver.received == []
    [delivery] = _deliveries(app.test_client(), created["id"])
    assert delivery["state"] == "pending" and delivery["tries"] == 1
    assert "loopback" in delivery["log"][0]["error"]


def test_delivery_rechecks_the_target_a_name_rebound_to_loopback_is_a_failed_try(make_app, juhe, media, receiver):
    """The name resolved to a public address when the session was created; by delivery time it
    resolves to 127.0.0.1 (DNS rebinding): nothing is sent, the try is logged with the reason,
    and it is retried on the usual back-off."""
    from webapp.delivery.webhooks import Dispatcher
    receiver.statuses.clear()
    app = make_app(WEBHOOK_SECRET=SECRET, WEBHOOK_ALLOW_PRIVATE=False)
    client = app.test_client()
    services = app.extensions["liveness"]
    resolutions = Resolutions({"hooks.bank.example": [PUBLIC_IP]})
    services.dispatcher.resolver = resolutions
    url = f"http://hooks.bank.example:{receiver.server.server_port}/hook?token=s3cr3t-t0ken"
    created = finish_session(client, media, callback_url=url)
    assert resolutions.calls  # checked at creation
    resolutions.table["hooks.bank.example"] = ["127.0.0.1"]
    dispatcher = Dispatcher(services.store, SECRET, allow_private=False, resolver=resolutions)
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert dispatcher.deliver_due() == 1
    assert receiver.received == []
    [delivery] = _deliveries(client, created["id"])
    assert delivery["state"] == "pending" and delivery["tries"] == 1
    [attempt] = delivery["log"]
    assert attempt["status_code"] is None
    assert "loopback" in attempt["error"] and "127.0.0.1" in attempt["error"]
    assert "s3cr3t" not in attempt["error"]
    next_try = dt.datetime.fromisoformat(delivery["next_try_at"].replace("Z", "+00:00")).replace(tzinfo=None)
    assert BACKOFF[0] - 5 <= (next_try - before).total_seconds() <= BACKOFF[0] + 60
    assert dispatcher.deliver_due() == 0                   # back-off as for any failed try
    assert dispatcher.deliver_due(before + dt.timedelta(seconds=BACKOFF[0] + 61)) == 1
    assert receiver.received == [] and _deliveries(client, created["id"])[0]["tries"] == 2
    # A name that stops resolving is a failed try too.
    resolutions.table.clear()
    assert dispatcher.deliver_due(before + dt.timedelta(seconds=BACKOFF[0] + BACKOFF[1] + 122)) == 1
    assert "resolve" in _deliveries(client, created["id"])[0]["log"][-1]["error"]


def test_the_connection_goes_to_the_checked_address_with_the_original_host_header(make_app, juhe, media,
                                                                                 receiver):
    """Resolved once per try, and that very address is connected to: a name only the injected
    resolver knows reaches the loopback receiver, which sees the name in the Host header."""
    from webapp.delivery.webhooks import Dispatcher
    receiver.statuses.clear()
    app = make_app(WEBHOOK_SECRET=SECRET)
    port = receiver.server.server_port
    created = finish_session(app.test_client(), media, callback_url=f"http://hooks.bank.example:{port}/hook")
    resolutions = Resolutions({"hooks.bank.example": ["127.0.0.1"]})
    dispatcher = Dispatcher(app.extensions["liveness"].store, SECRET, allow_private=True, resolver=resolutions)
    assert dispatcher.deliver_due() == 1
    assert resolutions.calls == [("hooks.bank.example", port)]
    [got] = receiver.received
    assert got["headers"]["Host"] == f"hooks.bank.example:{port}"
    assert verify_signature(SECRET, got["body"], got["headers"]["X-Signature"])
    assert _deliveries(app.test_client(), created["id"])[0]["state"] == "delivered"


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory):
    """A self-signed certificate for hooks.bank.example only (no IP address in it)."""
    import shutil
    import subprocess
    assert shutil.which("openssl"), "openssl is needed for the TLS pinning test"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=hooks.bank.example", "-addext", "subjectAltName=DNS:hooks.bank.example",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def test_https_delivery_to_a_pinned_address_checks_sni_and_the_certificate_against_the_name(
        make_app, juhe, media, tls_certificate):
    import ssl
    import threading

    import requests
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    from webapp.delivery.webhooks import Dispatcher
    cert, key = tls_certificate
    seen = {"sni": [], "hosts": []}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen["sni"].append(name)

    @Request.application
    def hook(request):
        seen["hosts"].append(request.headers.get("Host"))
        return Response("ok")

    server = make_server("127.0.0.1", 0, hook, threaded=True, ssl_context=context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_port
        app = make_app(WEBHOOK_SECRET=SECRET)
        good = finish_session(app.test_client(), media, callback_url=f"https://hooks.bank.example:{port}/hook")
        http = requests.Session()
        http.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would replace `verify`
        http.verify = str(cert)
        resolutions = Resolutions({"hooks.bank.example": ["127.0.0.1"], "other.bank.example": ["127.0.0.1"]})
        dispatcher = Dispatcher(app.extensions["liveness"].store, SECRET, http=http, allow_private=True,
                                resolver=resolutions)
        assert dispatcher.deliver_due() == 1
        assert seen["sni"] == ["hooks.bank.example"] and seen["hosts"] == [f"hooks.bank.example:{port}"]
        assert _deliveries(app.test_client(), good["id"])[0]["state"] == "delivered"
        # The certificate is checked against the URL's name: one for another name is refused.
        bad = finish_session(app.test_client(), media, callback_url=f"https://other.bank.example:{port}/hook")
        assert dispatcher.deliver_due() == 1
        assert seen["hosts"] == [f"hooks.bank.example:{port}"]
        [delivery] = _deliveries(app.test_client(), bad["id"])
        assert delivery["state"] == "pending" and delivery["log"][0]["error"] == "SSLError"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("url, allowed", [
    ("http://2130706433/", False), ("http://0x7f000001/", False), ("http://0177.0.0.1/", False),
    ("http://127.1/", False), ("http://0/", False), ("http://[::1]:8080/", False), ("http://localhost/", False),
    ("http://x.localhost/", False), ("http://[::ffff:169.254.169.254]/", False), ("http://224.0.1.1/", False),
    ("https://93.184.215.14/", True), ("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", True),
])
def test_targets_check_as_the_sender_resolves(url, allowed):
    from webapp.delivery import targets
    if allowed:
        target = targets.check(url)
        assert str(target.address) == url.split("//")[1].strip("/[]")
    else:
        with pytest.raises(targets.TargetRefused):
            targets.check(url)
        if "localhost" not in url:  # allowed, an address literal is taken as it is
            assert targets.check(url, allow_private=True).address


def test_targets_check_refuses_what_it_cannot_send_to():
    from webapp.delivery import targets
    for url in ("ftp://93.184.215.14/", "http://[x", "http://x:99999/", "http:///nohost", "http://a b/"):
        with pytest.raises(targets.TargetRefused):
            targets.check(url, allow_private=True, resolver=Resolutions({"x": [PUBLIC_IP]}))
