"""The page's milestones, the consent receipt and the risk signals, as an operator reads them: in the
session JSON, the webhook and the drop-off funnel, kept per session, gone with the session, and
never more than the page is trusted with. The browser side is tests/browser/test_drop_off.py."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp import consent, page_events
from webapp.sessions import operator_fingerprint

from .conftest import AUTH, OPERATOR_KEY, create_session, idcard, rows
from .test_observability import sample, scrape
from .test_retention import age

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.0.0 Mobile Safari/537.36")


def report(person, name, detail=None, agent=IPHONE, **more):
    body = json.dumps({"name": name, **({"detail": detail} if detail else {}), **more})
    # as navigator.sendBeacon sends a string: text/plain
    return person.client.post(f"{person.path}/events", data=body, content_type="text/plain;charset=UTF-8",
                              headers={"User-Agent": agent})


def shown_version(person, lang="zh") -> str:
    page = person.client.get(f"{person.path}?lang={lang}").get_data(as_text=True)
    version, language = re.search(r'data-consent="([0-9a-f]{16}) (\w+)"', page).groups()
    assert language == lang
    return version


def session_json(client, session_id) -> dict:
    return client.get(f"/api/v1/sessions/{session_id}", headers=AUTH).get_json()


def test_the_operator_reads_the_pages_milestones_in_order_with_the_browser(client, new_session):
    created, person = new_session(mode="action")
    for name, detail in (("opened", None), ("consent_shown", None), ("camera_refused", "NotAllowedError"),
                         ("fallback", "denied")):
        assert report(person, name, detail).status_code == 204
    events = session_json(client, created["id"])["events"]
    assert [(e["name"], e["detail"]) for e in events] == [
        ("opened", None), ("consent_shown", None), ("camera_refused", "NotAllowedError"), ("fallback", "denied")]
    assert {e["client"] for e in events} == {"Safari · iOS"}
    assert sample(scrape(client), "liveness_page_events_total", event="camera_refused") >= 1


def test_the_page_is_trusted_with_nothing_but_known_names_and_details(client, new_session):
    created, person = new_session()
    assert report(person, "camera_refused", "<img src=x>").status_code == 204
    assert report(person, "opened", "with a name 张三").status_code == 204
    for bad in (b"", b"not json", b'{"name": "pwned"}', b'["opened"]', b'{"name": "opened", "x": "' + b"a" * 2000 + b'"}'):
        answer = person.client.post(f"{person.path}/events", data=bad, content_type="text/plain")
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "bad_event", bad
    assert person.client.post("/v/not-a-token/events", data=b'{"name": "opened"}').status_code == 404
    events = session_json(client, created["id"])["events"]
    assert [(e["name"], e["detail"]) for e in events] == [("camera_refused", "other"), ("opened", None)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["name", "detail", "version"]),
                                                                inner, max_size=3),
    max_leaves=8).map(lambda v: json.dumps(v).encode())))
def test_whatever_a_page_sends_is_an_event_or_a_400_never_a_500(client, body):
    _, person = create_once(client)
    answer = person.client.post(f"{person.path}/events", data=body, content_type="text/plain")
    assert answer.status_code in (204, 400), (body, answer.status_code)


_made: dict = {}


def create_once(client):
    if client not in _made:
        _made.clear()
        _made[client] = create_session(client, idcard=idcard(77))
    return _made[client]


def test_a_session_keeps_its_fill_of_events_and_no_more(client, new_session):
    created, person = new_session()
    for _ in range(page_events.MAX_PER_SESSION + 5):
        assert report(person, "consent_shown").status_code == 204
    assert len(session_json(client, created["id"])["events"]) == page_events.MAX_PER_SESSION


def test_the_consent_receipt_names_the_text_shown_its_language_and_the_asker(app, client, new_session):
    created, person = new_session(mode="action", return_url="https://bank.example/done")
    version = shown_version(person, "en")
    assert report(person, "consent_given", version=version, language="en").status_code == 204
    receipt = session_json(client, created["id"])["consent"]
    assert receipt["decision"] == "given" and receipt["language"] == "en" and receipt["asker"] == "bank.example"
    assert receipt["text_version"] == version and receipt["via"] == "page"
    assert dt.datetime.fromisoformat(receipt["at"].replace("Z", "+00:00"))
    with app.extensions["liveness"].store.session() as db:
        kept = consent.text_of(db, version)
        # the words the person read, in the language shown, naming the asker
        assert kept.language == "en" and "bank.example asks you to verify your face" in kept.text
        assert "About 6 seconds of video of your face (no sound)." in kept.text
    # A decline after agreeing (a reload) does not undo the consent a video may have been sent under.
    assert report(person, "consent_declined", version=version, language="en").status_code == 204
    assert session_json(client, created["id"])["consent"]["decision"] == "given"


def test_another_text_is_another_version_and_a_version_never_shown_is_no_receipt(client, new_session):
    _, first = new_session(mode="action", return_url="https://bank.example/done")
    _, second = new_session(mode="number", return_url="https://bank.example/done")
    _, third = new_session(mode="action", return_url="https://rent.example/done")
    versions = {shown_version(first), shown_version(first, "en"), shown_version(second), shown_version(third)}
    assert len(versions) == 4
    assert shown_version(first) == shown_version(first)  # the same words, the same version
    created, person = new_session(mode="action")
    assert report(person, "consent_given", version="0123456789abcdef", language="zh").status_code == 204
    assert session_json(client, created["id"])["consent"] is None


def test_a_decline_is_recorded_and_the_upload_brings_a_lost_consent(client, new_session, media):
    created, person = new_session(mode="silent")
    version = shown_version(person)
    report(person, "consent_declined", version=version, language="zh")
    assert session_json(client, created["id"])["consent"]["decision"] == "declined"

    created, person = new_session(mode="silent", idcard=idcard(41))
    version = shown_version(person)  # the page's own report of the consent never came
    challenge = person.challenge()["id"]
    with open(media("safari_fmp4"), "rb") as fh:
        answer = person.client.post(f"{person.path}/upload", content_type="multipart/form-data", data={
            "challenge": challenge, "consent": f"{version} zh", "video": (fh, "v.mp4")})
    assert answer.status_code == 200
    receipt = session_json(client, created["id"])["consent"]
    assert receipt["decision"] == "given" and receipt["via"] == "upload" and receipt["text_version"] == version


def test_the_receipt_and_the_events_go_with_the_session(make_app, juhe, media, database_url):
    app = make_app(RETENTION_DAYS=30)
    client = app.test_client()
    created, person = create_session(client, mode="silent")
    report(person, "consent_given", version=shown_version(person), language="zh")
    person.upload(media("safari_fmp4"))
    assert rows(database_url, "select count(*) from page_events") == [(1,)]
    age(app, created["id"], completed_at=dt.datetime(2000, 1, 1))
    assert app.test_cli_runner().invoke(args=["purge"]).exit_code == 0  # retention's purge
    assert rows(database_url, "select count(*) from page_events") == [(0,)]
    assert rows(database_url, "select count(*) from sessions where consent_json is not null") == [(0,)]


def test_risk_signals_are_kept_as_signals_and_a_change_of_browser_is_noticed(client, juhe, new_session, media):
    created, person = new_session(mode="silent", idcard=idcard(43))
    juhe.script[idcard(43)] = 267517  # too dark: a second attempt follows

    def upload(signals, agent):
        challenge = person.challenge()["id"]
        with open(media("safari_fmp4"), "rb") as fh:
            return person.client.post(f"{person.path}/upload", content_type="multipart/form-data",
                                      headers={"User-Agent": agent}, data={
                "challenge": challenge, "signals": json.dumps(signals), "video": (fh, "v.mp4")})

    sent = [{"code": "virtual_camera", "detail": "obs"}, {"code": "low_resolution", "detail": "320x240"},
            {"code": "made_up", "detail": "x"}, {"code": "page_hidden", "detail": "<b>"}]
    assert upload(sent, ANDROID).status_code == 200
    juhe.script.clear()
    assert upload([], IPHONE).status_code == 200
    first, second = session_json(client, created["id"])["attempts"]
    assert first["signals"] == [{"code": "virtual_camera", "detail": "obs"},
                                {"code": "low_resolution", "detail": "320x240"},
                                {"code": "page_hidden", "detail": None}]
    assert second["signals"] == [{"code": "client_changed", "detail": "Chrome · Android → Safari · iOS"}]
    assert second["error_code"] == 0  # a signal changes nothing of the verdict


def test_a_low_score_says_why_in_the_api_not_juhes_success(client, juhe, new_session, media):
    created, person = new_session(mode="silent", idcard=idcard(44))
    juhe.script[idcard(44)] = 41.0
    assert person.upload(media("safari_fmp4")).get_json()["outcome"]["result"] == "retry"
    view = session_json(client, created["id"])
    assert view["reason"] == "相似度低于通过标准" and view["attempts"][0]["reason"] == "相似度低于通过标准"
    assert view["error_code"] == 0 and view["score"] == 41.0


def test_the_drop_off_funnel_counts_each_step_with_its_top_reason(app, client, new_session):
    def person_who(*steps, agent=IPHONE, n):
        created, person = new_session(mode="action", idcard=idcard(300 + n))
        for step in steps:
            name, _, detail = step.partition(":")
            report(person, name, detail or None, agent=agent)
        return created, person

    person_who("opened", "consent_shown", n=1)                                    # left at consent
    person_who("opened", "consent_shown", "consent_declined", n=2)                 # declined
    person_who("opened", "consent_given", "camera_refused:NotAllowedError", "fallback:denied", n=3)
    person_who("opened", "consent_given", "camera_granted", n=4)                   # left in coaching
    person_who("opened", "consent_given", "camera_granted", "coaching_passed:anyway", "recording_started",
               "redo:missed_mouth", n=5)
    person_who("consent_given", "camera_granted", n=6, agent=ANDROID)             # "opened" was lost
    with app.extensions["liveness"].store.session() as db:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        funnel = page_events.compute(db, operator_fingerprint(OPERATOR_KEY), now - dt.timedelta(days=1),
                                     now + dt.timedelta(minutes=1))
    counts = {s["step"]: s["count"] for s in funnel["steps"]}
    assert counts == {"opened": 6, "consented": 4, "camera": 3, "recorded": 1, "sent": 0, "passed": 0}
    reasons = {s["step"]: sorted((r["reason"], r["count"]) for r in s["reasons"]) for s in funnel["steps"]}
    assert reasons["opened"] == [("consent_declined", 1), ("left", 1)]
    assert reasons["consented"] == [("camera_refused:NotAllowedError", 1)]  # then the camera app, never sent
    assert reasons["camera"] == [("left", 2)]
    assert reasons["recorded"] == [("redo:missed_mouth", 1)]
    assert [s["share"] for s in funnel["steps"]][:3] == [1.0, round(4 / 6, 3), 0.75]
    by_client = {c["name"]: {s["step"]: s["count"] for s in c["steps"]} for c in funnel["clients"]}
    assert by_client["Safari · iOS"]["opened"] == 5 and by_client["Chrome · Android"]["camera"] == 1


def test_the_console_shows_the_receipt_its_text_the_events_and_the_signals(make_app, juhe, media):
    from .test_console import OTHER_KEY, sign_in
    app = make_app(OPERATOR_API_KEYS=f"{OPERATOR_KEY},{OTHER_KEY}")
    client = app.test_client()
    created, person = create_session(client, mode="silent", return_url="https://bank.example/done")
    version = shown_version(person)
    report(person, "opened")
    report(person, "consent_given", version=version, language="zh")
    challenge = person.challenge()["id"]
    with open(media("safari_fmp4"), "rb") as fh:
        person.client.post(f"{person.path}/upload", content_type="multipart/form-data", data={
            "challenge": challenge, "signals": json.dumps([{"code": "virtual_camera", "detail": "obs"}]),
            "video": (fh, "v.mp4")})
    operator = app.test_client()
    sign_in(operator)
    page = operator.get(f"/console/sessions/{created['id']}").get_data(as_text=True)
    assert "已同意" in page and version in page and "bank.example" in page
    assert "virtual_camera: obs" in page and "风险信号只是提示" in page
    assert "consent_given" in page and "Safari · iOS" in page
    text = operator.get(f"/console/consent/{version}")
    assert text.status_code == 200 and "“bank.example”请您完成刷脸核验" in text.get_data(as_text=True)
    funnel = operator.get("/console/funnel").get_data(as_text=True)
    assert re.search(r"打开 1 → 同意 1 → 摄像头 1 → 录制 1 → 发送 1 → 通过 1", funnel), funnel
    exported = operator.get("/console/drop-off.csv?days=1")
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    everyone = {r["step"]: int(r["people"]) for r in rows if r["scope"] == "all"}
    assert everyone == {"opened": 1, "consented": 1, "camera": 1, "recorded": 1, "sent": 1, "passed": 1}
    assert {r["scope"] for r in rows} == {"all", "Safari · iOS"}
    # Another operator reads neither that text nor those people.
    other = app.test_client()
    sign_in(other, OTHER_KEY)
    assert other.get(f"/console/consent/{version}").status_code == 404
    assert "drop-empty" in other.get("/console/funnel").get_data(as_text=True)


def test_the_webhook_carries_the_receipt_and_the_events(make_app, juhe, media):
    from .loopback import Receiver
    from .test_webhooks import SECRET
    receiver = Receiver(statuses=[])
    try:
        app = make_app(WEBHOOK_SECRET=SECRET)
        client = app.test_client()
        created, person = create_session(client, mode="silent", callback_url=receiver.url)
        version = shown_version(person)
        report(person, "opened")
        report(person, "consent_given", version=version, language="zh")
        assert person.upload(media("safari_fmp4")).get_json()["outcome"]["result"] == "passed"
        assert app.extensions["liveness"].dispatcher.deliver_due() == 1
        [delivery] = receiver.received
        body = json.loads(delivery["body"])
        assert body["id"] == created["id"] and body["consent"]["text_version"] == version
        assert [e["name"] for e in body["events"]] == ["opened", "consent_given"]
    finally:
        receiver.stop()
