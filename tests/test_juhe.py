"""The Juhe client against a real loopback HTTP server standing in for Juhe."""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from requests.adapters import BaseAdapter
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from webapp.guidance import guidance_key
from webapp.juhe.client import JuheClient, JuheError, JuheResult, VerifyRequest, form_body

try:
    from tests.juhe_standin import JuheStandIn, make_idcard, make_video
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from juhe_standin import JuheStandIn, make_idcard, make_video

KEY = "k3yS3cret0123456789abcdef"
IDCARD = make_idcard("11010519491231002")
NAME = "王小明"


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """Small real MP4s made with ffmpeg: name -> bytes."""
    assert shutil.which("ffmpeg"), "ffmpeg is required: run bash scripts/test.sh"
    d = tmp_path_factory.mktemp("juhe-videos")
    return {
        "good": make_video(d / "good.mp4").read_bytes(),
        "silent": make_video(d / "silent.mp4", audio=False).read_bytes(),
        "short": make_video(d / "short.mp4", seconds=1).read_bytes(),
        "lowres": make_video(d / "lowres.mp4", size="320x240").read_bytes(),
    }


@pytest.fixture
def standin():
    server = JuheStandIn(key=KEY, slow_seconds=3).start()
    yield server
    server.stop()


def client_for(url: str, *, session: requests.Session | None = None, read: float = 20.0,
               retries: int = 2, key: str = KEY) -> JuheClient:
    return JuheClient(session or requests.Session(), key=key, url=url, timeout=(2.0, read),
                      connect_retries=retries, backoff=0.01)


def request(video: bytes, liveness_type: int = 1, validate_data: str | None = "4821",
            **kw) -> VerifyRequest:
    return VerifyRequest(idcard=kw.pop("idcard", IDCARD), realname=kw.pop("realname", NAME),
                         video=video, liveness_type=liveness_type, validate_data=validate_data,
                         **kw)


# --- answers that are results -------------------------------------------------------------

def test_a_pass_is_a_charged_result_with_score_and_orderid(standin, videos):
    result = client_for(standin.url).verify(request(videos["good"]))
    assert isinstance(result, JuheResult)
    assert (result.error_code, result.score, result.charged) == (0, 91.0, True)
    assert result.orderid.startswith("J") and result.orderid[1:].isdigit()
    assert result.passed(70) and not result.passed(91.5)


def test_a_low_score_is_a_result_that_does_not_pass(standin, videos):
    standin.script[IDCARD] = 55.5
    result = client_for(standin.url).verify(request(videos["good"]))
    assert (result.error_code, result.score) == (0, 55.5)
    assert not result.passed(70)


@pytest.mark.parametrize("code, charged", [(267517, False), (267509, True), (267545, False)])
def test_service_codes_are_results_not_errors(standin, videos, code, charged):
    standin.script[IDCARD] = code
    result = client_for(standin.url).verify(request(videos["good"]))
    assert result.error_code == code and result.score is None and result.charged is charged
    assert (result.orderid is not None) is charged  # the stand-in gives 267509 an orderid
    assert not result.passed(0)


def test_what_the_standin_rejects_comes_back_as_juhe_codes(standin, videos):
    client = client_for(standin.url)
    assert client.verify(request(videos["short"])).error_code == 267549
    assert client.verify(request(videos["silent"])).error_code == 267539
    assert client.verify(request(videos["silent"], 0, None)).error_code == 0
    assert client.verify(request(videos["lowres"])).error_code == 267538
    assert client.verify(request(b"not a video at all")).error_code == 267537
    too_big = os.urandom(6 * 1024 * 1024 + 1024)  # base64 > 8 MB
    assert client.verify(request(too_big)).error_code == 267536
    assert client.verify(request(videos["good"], 1, "12a4")).error_code == 267506
    assert client.verify(request(videos["good"], 2, "1,1")).error_code == 267507
    assert client.verify(request(videos["good"], 1, None)).error_code == 267506
    wrong_check = IDCARD[:-1] + ("1" if IDCARD[-1] == "0" else "0")
    assert client.verify(request(videos["good"], idcard=wrong_check)).error_code == 267504
    assert client.verify(request(videos["good"], realname="Wang")).error_code == 267505


# --- what goes over the wire --------------------------------------------------------------

def test_number_mode_sends_exactly_the_form_juhe_documents(standin, videos):
    client_for(standin.url).verify(request(videos["good"], 1, "0427"))
    [seen] = standin.requests
    assert seen["method"] == "POST" and seen["path"] == "/antiFaceId/query"
    assert seen["content_type"] == "application/x-www-form-urlencoded"
    assert seen["form"] == {"key": KEY, "idcard": IDCARD, "realname": NAME,
                            "livenessType": "1", "validateData": "0427"}
    assert seen["video_base64_chars"] == len(base64.b64encode(videos["good"]))
    assert seen["video_sha256"] == hashlib.sha256(videos["good"]).hexdigest()
    assert seen["probe"]["video_codec"] == "h264" and seen["probe"]["audio_codec"] == "aac"


def test_silent_mode_sends_no_validate_data_and_action_mode_sends_the_order(standin, videos):
    client = client_for(standin.url)
    client.verify(request(videos["good"], 0, "9999"))
    client.verify(request(videos["good"], 2, "2,1"))
    silent, action = standin.requests
    assert silent["form"]["livenessType"] == "0" and "validateData" not in silent["form"]
    assert action["form"]["livenessType"] == "2" and action["form"]["validateData"] == "2,1"
    for seen in standin.requests:
        assert "videoUrl" not in seen["form"] and "bestBase64" not in seen["form"]


def test_best_frames_are_requested_and_returned(standin, videos):
    result = client_for(standin.url).verify(
        request(videos["good"], best_frame=True, best_frame_num=3))
    assert standin.requests[0]["form"]["bestBase64"] == "1"
    assert standin.requests[0]["form"]["bestFrameNum"] == "3"
    assert base64.b64decode(result.best_base64)[:2] == b"\xff\xd8"  # a JPEG
    assert len(result.best_list) == 3


@pytest.mark.parametrize("kw", [{"best_frame_num": 1}, {"best_frame_num": 11},
                                {"best_frame_num": True}, {"liveness_type": 3}])
def test_impossible_requests_are_refused_locally(kw):
    args = {"liveness_type": 1, "validate_data": "1234", **kw}
    with pytest.raises(ValueError):
        VerifyRequest(idcard=IDCARD, realname=NAME, video=b"x", **args)


def test_the_request_repr_masks_identity_and_omits_the_video():
    text = repr(request(b"\x00secretvideo" * 100))
    assert IDCARD not in text and NAME not in text and "secretvideo" not in text
    assert "1101**********" in text and "王**" in text and "1200 bytes" in text


# --- failures -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode, status", [(JuheStandIn.HTTP_500, 500), (JuheStandIn.HTTP_502, 502)])
def test_http_errors_raise_kind_http(standin, videos, mode, status):
    standin.mode = mode
    with pytest.raises(JuheError) as caught:
        client_for(standin.url).verify(request(videos["good"]))
    err = caught.value
    assert (err.kind, err.http_status, err.reached, err.error_code) == ("http", status, True, None)
    assert len(standin.requests) == 1


@pytest.mark.parametrize("mode", [JuheStandIn.HTML, JuheStandIn.GARBAGE, b"[1, 2]", b"null",
                                  {"reason": "no code"}, {"error_code": "0", "reason": "str"},
                                  {"error_code": 1.5}, {"error_code": True},
                                  {"error_code": 0, "reason": "成功", "result": {"res": {}}},
                                  {"error_code": 0, "result": {"res": {"score": "high"}}},
                                  {"error_code": 0, "result": None}])
def test_unusable_answers_raise_invalid_response(standin, videos, mode):
    standin.mode = mode
    with pytest.raises(JuheError) as caught:
        client_for(standin.url).verify(request(videos["good"]))
    assert caught.value.kind == "invalid_response" and caught.value.reached
    assert caught.value.error_code is None


def test_a_read_timeout_is_reached_and_never_resent(standin, videos):
    standin.mode = JuheStandIn.SLOW
    started = time.monotonic()
    with pytest.raises(JuheError) as caught:
        client_for(standin.url, read=0.5).verify(request(videos["good"]))
    assert (caught.value.kind, caught.value.reached) == ("timeout", True)
    assert time.monotonic() - started < 2.5
    time.sleep(0.5)  # a re-sent request would have arrived by now
    assert len(standin.requests) == 1


def test_a_connection_dropped_after_sending_is_reached_and_never_resent(standin, videos):
    standin.mode = JuheStandIn.DROP
    with pytest.raises(JuheError) as caught:
        client_for(standin.url).verify(request(videos["good"]))
    assert (caught.value.kind, caught.value.reached) == ("connection", True)
    time.sleep(0.3)
    assert len(standin.requests) == 1


class CountingSession(requests.Session):
    """Counts the requests the client makes (retries included)."""

    def __init__(self):
        super().__init__()
        self.sent = 0

    def send(self, request, **kwargs):
        self.sent += 1
        return super().send(request, **kwargs)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_retried_then_reported_unreached():
    session = CountingSession()
    url = f"http://127.0.0.1:{closed_port()}/antiFaceId/query"
    with pytest.raises(JuheError) as caught:
        client_for(url, session=session, retries=2).verify(request(b"video"))
    assert (caught.value.kind, caught.value.reached) == ("connection", False)
    assert session.sent == 3


def test_an_unresolvable_host_is_retried_then_reported_unreached():
    session = CountingSession()
    with pytest.raises(JuheError) as caught:
        client_for("http://juhe-standin.invalid/antiFaceId/query", session=session,
                   retries=1).verify(request(b"video"))
    assert (caught.value.kind, caught.value.reached) == ("connection", False)
    assert session.sent == 2


class ScriptedAdapter(BaseAdapter):
    """A transport that raises the given exceptions in turn, then answers a pass."""

    def __init__(self, *raises: Exception):
        super().__init__()
        self.raises = list(raises)
        self.calls = 0

    def send(self, request, **kwargs):
        self.calls += 1
        if self.raises:
            raise self.raises.pop(0)
        response = requests.Response()
        response.status_code = 200
        response._content = b'{"reason":"ok","result":{"res":{"score":"88.5"},"orderid":"J1"},"error_code":0}'
        response.request = request
        return response

    def close(self):
        pass


def scripted_client(*raises: Exception, retries: int = 2) -> tuple[JuheClient, ScriptedAdapter]:
    adapter = ScriptedAdapter(*raises)
    session = requests.Session()
    session.mount("https://", adapter)
    return client_for("https://juhe.test/antiFaceId/query", session=session,
                      retries=retries), adapter


def test_a_connect_timeout_is_retried_and_can_then_succeed():
    client, adapter = scripted_client(requests.exceptions.ConnectTimeout("connect timed out"))
    result = client.verify(request(b"video"))
    assert adapter.calls == 2 and result.score == 88.5  # the score came as a string


@pytest.mark.parametrize("exc, kind", [
    (requests.exceptions.ReadTimeout("read timed out"), "timeout"),
    (requests.exceptions.ConnectionError(ReadTimeoutError(None, "/q", "Read timed out.")), "timeout"),
    (requests.exceptions.ConnectionError(ProtocolError("Connection aborted.",
                                                       ConnectionResetError(104, "reset"))),
     "connection"),
    (requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"), "connection"),
])
def test_failures_after_the_body_may_have_been_sent_are_not_retried(exc, kind):
    client, adapter = scripted_client(exc)
    with pytest.raises(JuheError) as caught:
        client.verify(request(b"video"))
    assert adapter.calls == 1 and caught.value.reached and caught.value.kind == kind


def test_a_failed_tls_handshake_is_unreached_and_not_retried():
    client, adapter = scripted_client(requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(JuheError) as caught:
        client.verify(request(b"video"))
    assert adapter.calls == 1 and not caught.value.reached and caught.value.kind == "connection"


def test_a_redirect_is_not_followed():
    """Following it would turn the POST into a GET without the video (and with no key)."""
    response = requests.Response()
    response.status_code, response.headers["Location"] = 301, "https://elsewhere.test/"
    client, adapter = scripted_client()
    adapter.send = lambda request, **kw: (setattr(response, "request", request), response)[1]
    with pytest.raises(JuheError) as caught:
        client.verify(request(b"video"))
    assert (caught.value.kind, caught.value.http_status) == ("http", 301)


@pytest.mark.parametrize("mode, code", [(10012, 10012), (10020, 10020),
                                        ({"resultcode": "112", "reason": "请求超过次数限制"}, 10012),
                                        ({"error_code": 123, "reason": "?"}, 123)])
def test_system_codes_raise_kind_system(standin, videos, mode, code):
    standin.mode = mode
    with pytest.raises(JuheError) as caught:
        client_for(standin.url).verify(request(videos["good"]))
    err = caught.value
    assert (err.kind, err.error_code, err.reached, guidance_key(err, 70)) == ("system", code, True, code)


def test_a_wrong_key_is_system_code_10001(standin, videos):
    with pytest.raises(JuheError) as caught:
        client_for(standin.url, key="wrong-key").verify(request(videos["good"]))
    assert (caught.value.kind, caught.value.error_code) == ("system", 10001)
    assert caught.value.reason == "错误的请求KEY"


def test_the_standin_sees_no_fields_in_a_non_form_body(standin):
    """Juhe's gateway reads form fields only: a JSON body has no key, so it answers 10001."""
    answer = requests.post(standin.url, json={"key": KEY, "idcard": IDCARD}, timeout=10).json()
    assert answer["error_code"] == 10001 and standin.requests[0]["form"] == {}


def test_result_from_dict_tolerates_nulls_and_strings():
    result = JuheResult.from_dict({"error_code": 267517, "reason": "光线太暗", "result": None})
    assert (result.orderid, result.score, result.best_base64, result.best_list) == (None, None, None, ())
    result = JuheResult.from_dict({"error_code": 0, "result": {"orderid": "J9", "res": {
        "score": 100, "bestBase64": None, "bestList": None}}})
    assert (result.score, result.best_base64, result.best_list, result.charged) == (100.0, None, (), True)
    result = JuheResult.from_dict({"error_code": 0, "result": {"res": {"score": " 70.25 "}}})
    assert result.score == 70.25 and result.passed(70)
    with pytest.raises(ValueError):
        JuheResult.from_dict({"reason": "no code"})


# --- secrets never leak ----------------------------------------------------------------------

def test_the_key_never_appears_in_logs_or_errors(standin, videos, caplog):
    caplog.set_level(logging.DEBUG)
    errors = []
    client = client_for(standin.url)
    impatient = client_for(standin.url, read=0.5)  # only for the slow answer: a busy machine
    client.verify(request(videos["good"]))          # must not time out the others
    for mode in (10001, JuheStandIn.HTTP_500, JuheStandIn.GARBAGE, JuheStandIn.SLOW):
        standin.mode = mode
        with pytest.raises(JuheError) as caught:
            (impatient if mode == JuheStandIn.SLOW else client).verify(request(videos["good"]))
        errors.append(caught.value)
    with pytest.raises(JuheError) as caught:
        client_for(f"http://127.0.0.1:{closed_port()}/q", retries=0).verify(request(b"v"))
    errors.append(caught.value)
    # A transport whose exception message carries the key (as some proxies echo bodies).
    leaky, _ = scripted_client(requests.exceptions.ConnectionError(f"boom key={KEY}"), retries=0)
    with pytest.raises(JuheError) as caught:
        leaky.verify(request(b"v"))
    errors.append(caught.value)

    texts = [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    texts += [str(e) for e in errors] + [repr(e) for e in errors] + [repr(client)]
    for text in texts:
        assert KEY not in text and IDCARD not in text and NAME not in text


def test_each_call_logs_one_line_with_masked_identity(standin, videos, caplog):
    caplog.set_level(logging.INFO, logger="webapp.juhe.client")
    client_for(standin.url).verify(request(videos["good"], 1, "4821"))
    [record] = [r for r in caplog.records if r.name == "webapp.juhe.client"]
    line = record.getMessage()
    assert "1101**********" + IDCARD[-4:] in line and "王**" in line
    assert "livenessType=1" in line and f"video_bytes={len(videos['good'])}" in line
    assert "error_code=0" in line and "orderid=J" in line and "elapsed=" in line


def test_a_key_in_the_url_is_refused():
    with pytest.raises(ValueError):
        JuheClient(requests.Session(), key=KEY, url=f"https://juhe.test/q?key={KEY}")


_b64 = st.binary(max_size=3000).map(lambda b: base64.b64encode(b).decode())
_long_text = st.text(min_size=1025, max_size=1500)  # long, but not base64 (or only nearly)
_nearly_b64 = _b64.filter(lambda v: len(v) > 1024).map(lambda v: v[:-4] + "=" + v[-4:])


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.text(max_size=40), _b64, _long_text, _nearly_b64),
                       max_size=6))
def test_the_form_juhe_receives_is_what_urlencode_would_send(form):
    """The fast encoder of the video field writes the very bytes the standard one writes."""
    assert form_body(form) == urlencode(form).encode()


def test_a_video_reaches_juhe_whole():
    video = base64.b64encode(os.urandom(300_000) + b"\xfb\xff\xfe").decode()
    body = form_body({"key": "k", "realname": "张三", "videoBase64": video})
    assert parse_qs(body.decode())["videoBase64"] == [video] and "+" in video and "/" in video


def test_the_wire_protocol_loads_without_the_guidance_table():
    """webapp.juhe.client and webapp.juhe.answer say what Juhe answered; which guidance row an answer
    stands for is webapp.guidance's business, so loading them loads no guidance."""
    script = ("import sys, webapp.juhe.client, webapp.juhe.answer\n"
              "print(sorted(m for m in sys.modules if m.startswith('webapp.guidance')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "[]", (done.stdout, done.stderr[-2000:])
