"""Juhe's best frames: asked for only when the session wants them, sealed at rest (Fernet, key
from BEST_FRAMES_KEY), fetched by the operator until BEST_FRAMES_RETENTION, purged after; never
in a log line or a webhook, which only says they exist."""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging

import pytest
from cryptography.fernet import Fernet

from webapp.settings import ConfigurationError, load_settings

from .conftest import AUTH, create_session, idcard, rows
from .loopback import Receiver

KEY = Fernet.generate_key().decode()


start = create_session  # (session JSON, Person) with the given client


def frames_of(client, session_id, headers=AUTH):
    return client.get(f"/api/v1/sessions/{session_id}/best-frames", headers=headers)


def age(app, session_id, **delta):
    """Move a session's stored frames back in time by `delta` (timedelta keywords)."""
    from sqlalchemy import select

    from webapp.storage import BestFrames
    back = dt.timedelta(**delta)
    with app.extensions["liveness"].store.session() as db:
        for kept in db.scalars(select(BestFrames).where(BestFrames.session_id == session_id)):
            kept.created_at, kept.expires_at = kept.created_at - back, kept.expires_at - back
        db.commit()


def test_the_frames_are_sealed_at_rest_and_the_operator_fetches_them(make_app, juhe, media, database_url):
    client = make_app(BEST_FRAMES_KEY=KEY).test_client()
    created, person = start(client, best_frames=3)
    assert person.upload(media("safari_fmp4")).get_json()["outcome"]["result"] == "passed"
    assert juhe.requests[0]["form"]["bestFrameNum"] == "3"

    response = frames_of(client, created["id"])
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert len(body["frames"]) == 3 and body["orderid"].startswith("J")
    assert all(base64.b64decode(f)[:3] == b"\xff\xd8\xff" for f in body["frames"])  # JPEGs

    # What the database holds is a Fernet token under BEST_FRAMES_KEY: no JPEG, no base64 of one.
    [(sealed, count)] = rows(database_url, "select data, count from best_frames")
    sealed = bytes(sealed)
    assert count == 3 and body["frames"][0][:40].encode() not in sealed and b"\xff\xd8\xff" not in sealed
    assert json.loads(Fernet(KEY.encode()).decrypt(sealed)) == body["frames"]
    # And no clear copy beside it: the attempts table has no frames column any more.
    import sqlalchemy
    engine = sqlalchemy.create_engine(database_url)
    assert not [c for c in sqlalchemy.inspect(engine).get_columns("attempts") if "frame" in c["name"]]
    engine.dispose()


def test_one_best_frame_is_asked_with_best_base64(make_app, juhe, media):
    client = make_app(BEST_FRAMES_KEY=KEY).test_client()
    created, person = start(client, best_frames=1, idcard=idcard(2))
    person.upload(media("safari_fmp4"))
    assert juhe.requests[0]["form"]["bestBase64"] == "1" and "bestFrameNum" not in juhe.requests[0]["form"]
    assert len(frames_of(client, created["id"]).get_json()["frames"]) == 1


def test_frames_juhe_sends_unasked_are_not_kept(client, juhe, media, database_url):
    number = idcard(3)
    juhe.script[number] = {"reason": "成功", "error_code": 0,
                           "result": {"orderid": "J1", "res": {"score": 95.0, "bestBase64": "/9j/unasked"}}}
    created, person = start(client, idcard=number)
    assert person.upload(media("safari_fmp4")).get_json()["outcome"]["result"] == "passed"
    assert rows(database_url, "select count(*) from best_frames") == [(0,)]
    answer = frames_of(client, created["id"])
    assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "no_best_frames"
    assert "未请求" in answer.get_json()["error"]["message_zh"]
    assert "did not ask" in answer.get_json()["error"]["message"]
    assert "best_frames" not in client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()


def test_the_webhook_and_the_logs_say_they_exist_and_never_hold_them(make_app, juhe, media, caplog):
    receiver = Receiver()
    try:
        app = make_app(BEST_FRAMES_KEY=KEY, WEBHOOK_SECRET="whsec-frames-0123456789", LOG_LEVEL="DEBUG")
        client = app.test_client()
        with caplog.at_level(logging.DEBUG):
            created, person = start(client, best_frames=2, callback_url=receiver.url, idcard=idcard(4))
            person.upload(media("safari_fmp4"))
            app.extensions["liveness"].dispatcher.deliver_due()
            frames = frames_of(client, created["id"]).get_json()["frames"]
        [hook] = receiver.received
        said = json.loads(hook["body"])["best_frames"]
        assert said["requested"] == 2 and said["available"] is True and said["count"] == 2 and said["expires_at"]
        logged = caplog.text + "".join(str(r.args) for r in caplog.records)
        for frame in frames:
            assert frame[:32].encode() not in hook["body"] and frame[:32] not in logged
    finally:
        receiver.stop()


def test_retention_readable_before_gone_after_and_purged(make_app, juhe, media, database_url):
    app = make_app(BEST_FRAMES_KEY=KEY)  # BEST_FRAMES_RETENTION: 3 days by default
    client = app.test_client()
    created, person = start(client, best_frames=2, idcard=idcard(5))
    person.upload(media("safari_fmp4"))

    age(app, created["id"], days=2, hours=23)  # within the 3 days
    assert frames_of(client, created["id"]).status_code == 200
    assert "best frames of 0 attempt(s)" in app.test_cli_runner().invoke(args=["purge"]).output

    age(app, created["id"], hours=2)  # past them: refused at once, before any purge
    late = frames_of(client, created["id"])
    assert late.status_code == 410 and late.get_json()["error"]["code"] == "best_frames_expired"
    view = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert view["best_frames"]["available"] is False and view["status"] == "passed"

    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0 and "purged the best frames of 1 attempt(s)" in result.output
    [(data, purged_at)] = rows(database_url, "select data, purged_at from best_frames")
    assert data is None and purged_at is not None
    assert frames_of(client, created["id"]).status_code == 410
    # The session itself stays for RETENTION_DAYS.
    assert client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).status_code == 200


def test_a_shortened_retention_applies_to_frames_already_stored(make_app, juhe, media, database_url):
    app = make_app(BEST_FRAMES_KEY=KEY)
    client = app.test_client()
    created, person = start(client, best_frames=1, idcard=idcard(6))
    person.upload(media("safari_fmp4"))
    age(app, created["id"], hours=2)
    shorter = make_app(BEST_FRAMES_KEY=KEY, BEST_FRAMES_RETENTION="1h")
    assert frames_of(shorter.test_client(), created["id"]).status_code == 410
    assert "best frames of 1 attempt(s)" in shorter.test_cli_runner().invoke(args=["purge"]).output


def test_a_key_can_be_rotated_and_a_lost_key_is_said_so(make_app, juhe, media):
    client = make_app(BEST_FRAMES_KEY=KEY).test_client()
    created, person = start(client, best_frames=1, idcard=idcard(7))
    person.upload(media("safari_fmp4"))
    frames = frames_of(client, created["id"]).get_json()["frames"]
    new = Fernet.generate_key().decode()
    rotated = make_app(BEST_FRAMES_KEY=f"{new},{KEY}").test_client()
    assert frames_of(rotated, created["id"]).get_json()["frames"] == frames
    lost = frames_of(make_app(BEST_FRAMES_KEY=new).test_client(), created["id"])
    assert lost.status_code == 500 and lost.get_json()["error"]["code"] == "best_frames_unreadable"


def test_another_operator_cannot_read_them(make_app, juhe, media):
    client = make_app(BEST_FRAMES_KEY=KEY, OPERATOR_API_KEYS="op-key-abcdef,other-key-0123").test_client()
    created, person = start(client, best_frames=1, idcard=idcard(8))
    person.upload(media("safari_fmp4"))
    assert frames_of(client, created["id"], {"Authorization": "Bearer other-key-0123"}).status_code == 404


def test_without_a_key_of_its_own_one_is_derived_from_secret_key(make_app, juhe, media):
    client = make_app().test_client()
    created, person = start(client, best_frames=1, idcard=idcard(9))
    person.upload(media("safari_fmp4"))
    assert len(frames_of(client, created["id"]).get_json()["frames"]) == 1


@pytest.mark.parametrize("value, seconds", [("3d", 259200), ("72h", 259200), ("90m", 5400), ("3600", 3600)])
def test_the_retention_reads_as_a_duration(tmp_path, value, seconds):
    assert seconds == load_settings(tmp_path, {"BEST_FRAMES_RETENTION": value}).BEST_FRAMES_RETENTION
    assert load_settings(tmp_path).BEST_FRAMES_RETENTION == 3 * 86400


@pytest.mark.parametrize("name, value", [("BEST_FRAMES_RETENTION", "three days"),
                                         ("BEST_FRAMES_RETENTION", "10s"),
                                         ("BEST_FRAMES_KEY", "not-a-fernet-key")])
def test_bad_settings_stop_the_start_naming_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigurationError, match=name):
        load_settings(tmp_path, {name: value})
