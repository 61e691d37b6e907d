"""One video's whole path in the developer's fast loop: the app, its database, the loopback Juhe
stand-in and the operator API are real; only the normaliser is a stand-in (injected through the
app's `Verifier`, as build_services injects ffmpeg's), so no ffmpeg runs. tests/test_flow.py
runs the same path with real ffmpeg on real videos."""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
from pathlib import Path

import pytest

from webapp import video
from webapp.video.types import PreparedVideo, ProbeInfo

from .conftest import AUTH, create_session, idcard

REJECT = b"REJECT "  # an upload that starts so is refused as Juhe would refuse it: REJECT 267539


def fake_normalise(upload: Path, mode: str, scratch: Path) -> PreparedVideo:
    """What ffmpeg would make of an upload, without ffmpeg: the bytes go through marked as
    normalised; sound kept in number mode only; `REJECT <code>` refused with that code."""
    data = upload.read_bytes()
    assert scratch in upload.parents  # the upload lives in its own folder while it is verified
    if data.startswith(REJECT):
        raise video.VideoRejected(int(data[len(REJECT):].split()[0]), "the fake normaliser refused it")
    audio = "aac" if mode == "number" else None
    info = ProbeInfo("mov", "h264", "yuv420p", 640, 480, 0, 30.0, 6.0, audio, len(data))
    return PreparedVideo(b"normalised:" + data, info, info, remuxed=True, timings={"total": 0.01})


@pytest.fixture
def client(make_app, juhe):
    app = make_app()
    services = app.extensions["liveness"]
    services.verifier = dataclasses.replace(services.verifier, normalise=fake_normalise)
    juhe.inspect = False  # nothing for the stand-in's ffprobe to read
    yield app.test_client()
    juhe.inspect = True


def upload(client, person, body: bytes, challenge_id: str, tmp_path: Path):
    path = tmp_path / "recording.mp4"
    path.write_bytes(body)
    return person.upload(path, challenge_id)


@pytest.mark.parametrize("mode, liveness", [("number", "1"), ("action", "2"), ("silent", "0")])
def test_a_pass_sends_the_challenge_shown_and_the_normalised_video(client, juhe, tmp_path, mode, liveness):
    created, person = create_session(client, mode=mode)
    challenge = person.challenge()
    answer = upload(client, person, b"a recording", challenge["id"], tmp_path)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["outcome"]["result"] == "passed" and "通过" in body["outcome"]["message"]
    [sent] = juhe.requests
    assert sent["form"]["livenessType"] == liveness
    assert sent["form"].get("validateData") == challenge.get("digits") or \
        sent["form"].get("validateData") == ",".join(str(a["code"]) for a in challenge.get("actions", []))
    assert sent["video_sha256"] == hashlib.sha256(b"normalised:a recording").hexdigest()
    view = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert view["status"] == "passed" and [a["charged"] for a in view["attempts"]] == [True]
    assert view["attempts"][0]["video"]["received"]["audio_codec"] == ("aac" if mode == "number" else None)
    assert view["attempts"][0]["video"]["path"] == "copied"


def test_the_upload_and_the_state_tell_one_verdict_in_one_shape(client, juhe, tmp_path):
    """What the page draws after an upload and after a reload (or a worker's verdict) is the same."""
    juhe.script[idcard(61)] = 267517
    _, person = create_session(client, idcard=idcard(61))
    body = upload(client, person, b"too dark", person.challenge()["id"], tmp_path).get_json()
    outcome, state = body["outcome"], body["state"]
    assert outcome == state["last"] == person.state()["last"]
    assert outcome["result"] == "retry" and outcome["retry"] and outcome["attempts_left"] == 2
    assert outcome["problem"] == "光线太暗" and "光" in outcome["message"] and "267517" not in str(outcome)


def test_a_retry_gets_a_fresh_challenge_and_the_attempts_run_out_as_failed(client, juhe, tmp_path):
    juhe.script[idcard(62)] = 267517
    created, person = create_session(client, idcard=idcard(62))
    seen = []
    for left in (2, 1, 0):
        challenge = person.challenge()
        seen.append(challenge["digits"])
        outcome = upload(client, person, b"dark", challenge["id"], tmp_path).get_json()["outcome"]
        assert outcome["attempts_left"] == left
    assert outcome["result"] == "failed" and not outcome["retry"]
    assert all(a != b for a, b in itertools.pairwise(seen))
    state = person.state()
    assert state["status"] == "failed" and state["attempts_left"] == 0 and state["last"] == outcome
    view = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert view["status"] == "failed" and [a["error_code"] for a in view["attempts"]] == [267517] * 3
    assert client.post(f"{person.path}/challenge").status_code == 409


def test_a_video_refused_before_juhe_uses_no_attempt_and_is_not_sent(client, juhe, tmp_path):
    created, person = create_session(client, mode="number")
    answer = upload(client, person, REJECT + b"267539 no sound", person.challenge()["id"], tmp_path)
    outcome = answer.get_json()["outcome"]
    assert outcome["result"] == "rejected" and outcome["attempts_left"] == 3 and outcome["retry"]
    assert juhe.requests == []
    view = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert view["attempts"] == [] and view["attempts_left"] == 3 and view["status"] == "pending"
    # and the person records again, and passes
    assert upload(client, person, b"loud", person.challenge()["id"], tmp_path).get_json()["outcome"]["result"] == "passed"


def test_a_challenge_is_used_once(client, juhe, tmp_path):
    juhe.script[idcard(63)] = 267512
    _, person = create_session(client, idcard=idcard(63))
    challenge = person.challenge()
    upload(client, person, b"close", challenge["id"], tmp_path)
    again = upload(client, person, b"close", challenge["id"], tmp_path)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "challenge_invalid"
    assert len(juhe.requests) == 1


def test_the_operators_video_takes_the_same_path_and_reads_the_same_verdict(client, juhe, tmp_path):
    juhe.script[idcard(64)] = 267517
    created, _person = create_session(client, idcard=idcard(64), mode="action")
    challenge = client.post(f"/api/v1/sessions/{created['id']}/challenge", headers=AUTH).get_json()["challenge"]
    path = tmp_path / "app.mp4"
    path.write_bytes(b"from the operator's app")
    with open(path, "rb") as fh:
        answer = client.post(f"/api/v1/sessions/{created['id']}/video", headers=AUTH,
                             data={"challenge": challenge["id"], "video": (fh, "app.mp4")},
                             content_type="multipart/form-data")
    assert answer.status_code == 200
    outcome = answer.get_json()["outcome"]
    assert outcome["code"] == "267517" and outcome["result"] == "retry" and outcome["operator"]
    page = client.get(f"{_person.path}/state").get_json()["last"]
    assert {k: v for k, v in outcome.items() if k not in ("code", "score", "operator")} == page
    [sent] = juhe.requests
    assert sent["form"]["validateData"] == challenge["validate_data"]
    assert answer.get_json()["session"]["attempts_left"] == 2
