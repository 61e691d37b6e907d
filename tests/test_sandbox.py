"""The in-process Juhe simulator: wire format, input rules, video checks, test ID numbers.

The input rules are also run against the independently written loopback stand-in, so the
sandbox and the stand-in check each other.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile

import pytest
import requests

from webapp.juhe import sandbox
from webapp.juhe.client import JuheClient, JuheError, VerifyRequest
from webapp.juhe.sandbox import TEST_IDS, sandbox_session

try:
    from tests.juhe_standin import JuheStandIn, gb11643_check, make_idcard, make_video
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from juhe_standin import JuheStandIn, gb11643_check, make_idcard, make_video

URL = "https://apis.juhe.cn/antiFaceId/query"
KEY = "sandbox"
NAME = "李四"
PLAIN_ID = make_idcard("44030419851015123")  # not a sandbox test number: default pass


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Small real MP4s made with ffmpeg: name -> bytes."""
    assert shutil.which("ffmpeg"), "ffmpeg is required: run bash scripts/test.sh"
    d = tmp_path_factory.mktemp("sandbox-videos")
    return {
        "good": make_video(d / "good.mp4", seconds=2.5).read_bytes(),
        "silent": make_video(d / "silent.mp4", seconds=2.5, audio=False).read_bytes(),
        "short": make_video(d / "short.mp4", seconds=1).read_bytes(),
        "lowres": make_video(d / "lowres.mp4", size="320x240").read_bytes(),
    }


@pytest.fixture
def client():
    return JuheClient(sandbox_session(), key=KEY, url=URL, connect_retries=0)


def verify(client: JuheClient, video: bytes, idcard: str = PLAIN_ID, liveness_type: int = 1,
           validate_data: str | None = "5310", **kw):
    return client.verify(VerifyRequest(idcard=idcard, realname=NAME, video=video,
                                       liveness_type=liveness_type, validate_data=validate_data,
                                       **kw))


def expected(idcard: str) -> tuple[str, float | int]:
    """The architecture's table, written out again: ("system"|"service", code) or ("score", s)."""
    seq = int(idcard[14:17])
    if 501 <= seq <= 549:
        return "service", 267000 + seq
    if 1 <= seq <= 21 and seq not in (6, 10, 15, 16, 17, 18, 19):
        return "system", 10000 + seq
    if 600 <= seq <= 699:
        return "score", seq - 600
    return "score", 92.5


# --- test ID numbers ----------------------------------------------------------------------

def test_test_ids_are_valid_numbers_born_1990_03_07():
    assert len(TEST_IDS) == len({idcard for idcard, _ in TEST_IDS})
    for idcard, description in TEST_IDS:
        assert re.fullmatch(r"11010119900307\d{3}[\dX]", idcard)
        assert gb11643_check(idcard[:17]) == idcard[17]
        assert description
    sequences = {int(idcard[14:17]) for idcard, _ in TEST_IDS}
    assert set(range(501, 550)) <= sequences
    assert {1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 20, 21} <= sequences
    assert {600, 699} <= sequences


@pytest.mark.parametrize("idcard, description", TEST_IDS, ids=[i for i, _ in TEST_IDS])
def test_every_test_id_yields_its_outcome(client, clips, idcard, description):
    kind, value = expected(idcard)
    if kind == "system":
        with pytest.raises(JuheError) as caught:
            verify(client, clips["good"], idcard)
        assert (caught.value.kind, caught.value.error_code) == ("system", value)
        assert str(value) in description
        return
    result = verify(client, clips["good"], idcard)
    if kind == "service":
        assert (result.error_code, result.score) == (value, None)
        assert result.charged is (value == 267509)
        assert (result.orderid is not None) is (value == 267509)
        assert str(value) in description
    else:
        assert (result.error_code, result.score, result.charged) == (0, value, True)
        assert re.fullmatch(r"SANDBOX\d{20}", result.orderid)


def test_any_other_valid_id_number_passes_with_92_5(client, clips):
    result = verify(client, clips["good"], PLAIN_ID)
    assert (result.error_code, result.score) == (0, 92.5) and result.passed(70)


def test_best_frames_are_real_jpegs(client, clips):
    result = verify(client, clips["good"], best_frame=True, best_frame_num=4)
    assert base64.b64decode(result.best_base64)[:3] == b"\xff\xd8\xff"
    assert len(result.best_list) == 4
    assert all(base64.b64decode(b)[:2] == b"\xff\xd8" for b in result.best_list)
    plain = verify(client, clips["good"])
    assert plain.best_base64 is None and plain.best_list == ()


def test_the_local_video_checks_answer_like_juhe(client, clips):
    assert verify(client, clips["short"]).error_code == 267549
    assert verify(client, clips["silent"]).error_code == 267539
    assert verify(client, clips["silent"], liveness_type=0, validate_data=None).error_code == 0
    assert verify(client, clips["lowres"]).error_code == 267538
    assert verify(client, b"\x00\x01 this is not a video").error_code == 267537


def test_the_sandbox_keeps_nothing_on_disk(client, clips, tmp_path, monkeypatch):
    # A temporary folder of this test's own: other test processes' sandboxes write to /tmp too.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    verify(client, clips["good"])
    assert verify(client, b"\x00\x01 this is not a video").error_code == 267537
    assert list(tmp_path.iterdir()) == []


def test_the_wire_format_is_juhes(clips):
    session = sandbox_session()
    form = {"key": KEY, "idcard": sandbox.sandbox_idcard(650), "realname": NAME,
            "videoBase64": base64.b64encode(clips["good"]).decode(), "livenessType": "0"}
    response = session.post("http://apis.juhe.cn/antiFaceId/query", data=form, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(response.content.decode("utf-8"))
    assert list(body) == ["reason", "result", "error_code"]
    assert body["error_code"] == 0 and body["reason"] == "成功"
    assert body["result"]["res"] == {"score": 50.0} and body["result"]["orderid"]


# --- input rules, sandbox and stand-in side by side ------------------------------------------

def _form(**overrides) -> dict[str, str]:
    form = {"key": KEY, "idcard": PLAIN_ID, "realname": NAME,
            "videoBase64": base64.b64encode(b"\x00" * 64).decode(), "livenessType": "1",
            "validateData": "1234"}
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


RULES = [  # (what is wrong, form overrides, code); each case is otherwise valid up to its rule
    ("no key", {"key": None}, 10001),
    ("empty key, everything else wrong too", {"key": "", "videoBase64": None, "livenessType": "9"}, 10001),
    ("no video", {"videoBase64": None}, 267502),
    ("empty video", {"videoBase64": ""}, 267502),
    ("liveness type 3", {"livenessType": "3"}, 267503),
    ("liveness type word", {"livenessType": "silent", "idcard": "123"}, 267503),
    ("short ID number", {"idcard": PLAIN_ID[:-1]}, 267504),
    ("wrong check digit", {"idcard": PLAIN_ID[:-1] + ("0" if PLAIN_ID[-1] != "0" else "1")}, 267504),
    ("latin name", {"realname": "Li Si"}, 267505),
    ("one-character name", {"realname": "李"}, 267505),
    ("name with digits", {"realname": "李四2", "validateData": "12"}, 267505),
    ("three digits", {"validateData": "123"}, 267506),
    ("letters", {"validateData": "12a4"}, 267506),
    ("no validateData in number mode", {"validateData": None}, 267506),
    ("bad action order", {"livenessType": "2", "validateData": "1,1"}, 267507),
    ("digits in action mode", {"livenessType": "2", "validateData": "1234"}, 267507),
    ("bestFrameNum 1", {"bestFrameNum": "1"}, 267510),
    ("bestFrameNum 11", {"bestFrameNum": "11"}, 267510),
    ("only a videoUrl", {"videoBase64": None, "videoUrl": "https://example.com/v.mp4"}, 267524),
    ("not base64", {"videoBase64": "@@@not base64@@@"}, 267536),
    ("base64 over 8 MB", {"videoBase64": "A" * (8 * 1024 * 1024 + 4)}, 267536),
    ("decodes to nothing", {"videoBase64": "===="}, 267536),
]


@pytest.fixture(scope="module")
def standin():
    server = JuheStandIn(key=KEY).start()
    yield server
    server.stop()


@pytest.mark.parametrize("what, overrides, code", RULES, ids=[r[0] for r in RULES])
def test_input_rules_in_sandbox_and_standin(standin, what, overrides, code):
    form = _form(**overrides)
    for session, url in ((sandbox_session(), URL), (requests.Session(), standin.url)):
        answer = session.post(url, data=form, timeout=30).json()
        assert answer["error_code"] == code, (what, url)
        assert answer["result"] is None


def test_silent_mode_ignores_validate_data_and_a_missing_type_means_silent(clips):
    session = sandbox_session()
    video = base64.b64encode(clips["silent"]).decode()
    for overrides in ({"livenessType": "0", "validateData": "nonsense"},
                      {"livenessType": None, "validateData": None}):
        answer = session.post(URL, data=_form(videoBase64=video, **overrides), timeout=30).json()
        assert answer["error_code"] == 0


def test_a_json_body_shows_juhe_no_fields():
    answer = sandbox_session().post(URL, json=_form(), timeout=5).json()
    assert answer["error_code"] == 10001


def test_video_checks_run_only_after_the_parameter_rules(clips):
    """A broken video with a bad ID number is refused for the ID number first."""
    good = sandbox.sandbox_idcard(517)
    bad = good[:-1] + ("1" if good[-1] == "0" else "0")
    answer = sandbox_session().post(URL, data=_form(idcard=bad), timeout=5)
    assert answer.json()["error_code"] == 267504
    big = base64.b64encode(os.urandom(16)).decode()
    answer = sandbox_session().post(URL, data=_form(videoBase64=big), timeout=30)
    assert answer.json()["error_code"] == 267537


def test_a_broken_ffprobe_answers_like_juhes_engine_failing(clips):
    """The sandbox's stand-in for Juhe's liveness engine is ffprobe: if it cannot run, the
    answer is 267545 (engine error, not counted), not a crash."""
    from webapp.video import Tools
    client = JuheClient(sandbox_session(Tools(ffprobe="/nonexistent/ffprobe")), key=KEY, url=URL)
    assert verify(client, clips["good"]).error_code == 267545
