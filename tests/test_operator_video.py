"""A video recorded elsewhere: the operator draws the challenge through the API, then sends the
video as multipart or names it by `video_url`; either way it runs the page's path (checks,
normalisation, guidance, attempts, webhooks) and Juhe gets the normalised video in the body.
The URL is fetched from a real loopback file server; hostile URLs (internal addresses, a
redirect to loopback, slow and trickling servers, oversize files, pages that are not videos)
are refused or answered with Juhe's download codes, and never cost an attempt."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from webapp.api import video_url
from webapp.delivery import targets
from webapp.delivery.webhooks import verify_signature

from .conftest import AUTH, idcard, rows
from .loopback import Receiver
from .test_openapi import DOC_PATH, Schemas

SCHEMAS = Schemas(json.loads(DOC_PATH.read_text(encoding="utf-8")))


class FileServer:
    """A real HTTP server on 127.0.0.1 that serves one video in good and in hostile ways, and
    records every request it gets (`requests`: the paths)."""

    def __init__(self, video: Path):
        self.video = video.read_bytes()
        self.requests: list[str] = []
        self.stopping = threading.Event()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    @Request.application
    def app(self, request: Request) -> Response:
        self.requests.append(request.full_path.rstrip("?"))
        path = request.path
        if path == "/video.mp4":
            return Response(self.video, content_type="video/mp4")
        if path == "/download":  # what object stores send when they know no better
            return Response(self.video, content_type="application/octet-stream")
        if path == "/redirect":
            return Response("", status=302, headers={"Location": request.args["to"]})
        if path == "/slow":
            self.stopping.wait(30)
            return Response(self.video, content_type="video/mp4")
        if path == "/trickle":  # every read gets a byte quickly; the whole file would take hours
            def trickle():
                for i in range(len(self.video)):
                    if self.stopping.wait(0.05):
                        return
                    yield self.video[i:i + 1]
            return Response(trickle(), content_type="video/mp4",
                            headers={"Content-Length": str(len(self.video))})
        if path == "/big":
            return Response(b"\0" * (7 * 1024 * 1024), content_type="video/mp4")
        if path == "/big-unannounced":  # no Content-Length: counted while it arrives
            def endless():
                chunk = b"\0" * 65536
                for _ in range(200):
                    yield chunk
            return Response(endless(), content_type="video/mp4", direct_passthrough=True)
        if path == "/page":
            return Response("<!doctype html><h1>Sign in to see this file</h1>", content_type="text/html")
        if path == "/noise":
            return Response(b"PK\3\4 a zip, not a video" * 400, content_type="application/octet-stream")
        if path == "/empty":
            return Response(b"", content_type="video/mp4")
        if path == "/broken":  # announces the whole file, sends half, hangs up
            half = self.video[: len(self.video) // 2]
            return Response(iter([half]), content_type="video/mp4",
                            headers={"Content-Length": str(len(self.video))})
        return Response("no such file", status=404, content_type="text/plain")


@pytest.fixture
def files(media):
    server = FileServer(media("safari_fmp4"))
    yield server
    server.stop()


def create(client, **body) -> dict:
    body.setdefault("realname", "张三")
    body.setdefault("idcard", idcard(1))
    response = client.post("/api/v1/sessions", json=body, headers=AUTH)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def challenge(client, session_id: str) -> dict:
    response = client.post(f"/api/v1/sessions/{session_id}/challenge", headers=AUTH)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["challenge"]


def send_url(client, session_id: str, url: str, challenge_id: str | None):
    body = {"video_url": url} | ({"challenge": challenge_id} if challenge_id else {})
    return client.post(f"/api/v1/sessions/{session_id}/video", json=body, headers=AUTH)


def send_file(client, session_id: str, path: Path, challenge_id: str):
    with open(path, "rb") as fh:
        return client.post(f"/api/v1/sessions/{session_id}/video", headers=AUTH,
                           data={"challenge": challenge_id, "video": (fh, "clip.mp4")},
                           content_type="multipart/form-data")


# -- the good path -------------------------------------------------------------------------------
def test_a_video_url_is_fetched_normalised_and_sent_to_juhe_in_the_body(make_app, juhe, files):
    receiver = Receiver()
    try:
        app = make_app(WEBHOOK_SECRET="whsec-video-url-0123", VIDEO_URL_ALLOW_PRIVATE=True)
        client = app.test_client()
        created = create(client, mode="number", callback_url=receiver.url)
        drawn = SCHEMAS.check("/api/v1/sessions/{session_id}/challenge", "post", client.post(
            f"/api/v1/sessions/{created['id']}/challenge", headers=AUTH))["challenge"]
        assert drawn["mode"] == "number" and drawn["liveness_type"] == 1
        assert drawn["digits"] == drawn["validate_data"] and len(drawn["digits"]) == 4

        response = send_url(client, created["id"], files.url("/video.mp4?sig=secret-token"), drawn["id"])
        assert response.status_code == 200, response.get_json()
        answer = SCHEMAS.check("/api/v1/sessions/{session_id}/video", "post", response)
        assert answer["outcome"]["result"] == "passed" and answer["outcome"]["code"] == "0"
        assert answer["session"]["status"] == "passed" and len(answer["session"]["attempts"]) == 1

        # Fetched once; Juhe got the challenge and the normalised video itself, never our URL.
        assert files.requests == ["/video.mp4?sig=secret-token"]
        [sent] = juhe.requests
        assert "videoUrl" not in sent["form"] and sent["video_base64_chars"] > 0
        assert sent["form"]["validateData"] == drawn["digits"] and sent["form"]["livenessType"] == "1"
        assert sent["probe"]["video_codec"] == "h264"
        assert not any("127.0.0.1" in value for value in sent["form"].values())

        # The same webhook as for the page.
        assert app.extensions["liveness"].dispatcher.deliver_due() == 1
        [hook] = receiver.received
        assert verify_signature("whsec-video-url-0123", hook["body"], hook["headers"]["X-Signature"])
        assert b'"status":"passed"' in hook["body"]
    finally:
        receiver.stop()


def test_a_multipart_upload_gets_the_pages_guidance_and_counts_the_same(client, juhe, media):
    number = idcard(2)
    created = create(client, idcard=number, mode="action")
    first = challenge(client, created["id"])
    assert [a["zh"] for a in first["actions"]] in (["张嘴", "闭眼"], ["闭眼", "张嘴"])
    juhe.script[number] = 267517
    answer = send_file(client, created["id"], media("safari_fmp4"), first["id"]).get_json()
    assert answer["outcome"]["result"] == "retry" and answer["outcome"]["code"] == "267517"
    assert "光线" in answer["outcome"]["message"] and answer["outcome"]["retry"] is True
    assert answer["session"]["attempts_left"] == 2
    assert juhe.requests[0]["form"]["validateData"] == first["validate_data"]

    # The challenge is used: sending it again is refused, and a new one is needed.
    again = send_file(client, created["id"], media("safari_fmp4"), first["id"])
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "challenge_invalid"
    juhe.script.clear()
    second = challenge(client, created["id"])
    answer = send_file(client, created["id"], media("safari_fmp4"), second["id"]).get_json()
    assert answer["outcome"]["result"] == "passed" and answer["session"]["status"] == "passed"
    assert [a["error_code"] for a in answer["session"]["attempts"]] == [267517, 0]
    assert len(juhe.requests) == 2

    # A finished session takes no more video.
    closed = client.post(f"/api/v1/sessions/{created['id']}/challenge", headers=AUTH)
    assert closed.status_code == 409 and closed.get_json()["error"]["code"] == "session_closed"


def test_silent_mode_takes_a_challenge_too_so_a_retried_call_is_never_paid_twice(client, juhe, media,
                                                                                 database_url):
    created = create(client, mode="silent")
    without = send_file(client, created["id"], media("safari_fmp4"), "")
    assert without.status_code == 409 and not juhe.requests
    drawn = challenge(client, created["id"])
    answer = send_file(client, created["id"], media("safari_fmp4"), drawn["id"]).get_json()
    assert answer["outcome"]["result"] == "passed"
    assert juhe.requests[0]["form"]["livenessType"] == "0"
    # The operator's client retries the call whose answer it lost: refused, not paid again.
    again = send_file(client, created["id"], media("safari_fmp4"), drawn["id"])
    assert again.status_code == 409 and len(juhe.requests) == 1
    # The console's funnel tells these apart from the page's uploads.
    assert rows(database_url, "select browser, os from attempts") == [("API", "other")]


def test_another_operators_session_and_bad_bodies_are_refused(make_app, juhe, media):
    app = make_app(OPERATOR_API_KEYS="op-key-abcdef,other-operator-key")
    client = app.test_client()
    created = create(client, mode="number")
    other = {"Authorization": "Bearer other-operator-key"}
    assert client.post(f"/api/v1/sessions/{created['id']}/challenge", headers=other).status_code == 404
    path = f"/api/v1/sessions/{created['id']}/video"
    for body, field in (({"video_url": "ftp://files.example/v.mp4"}, "video_url"),
                        ({"video_url": "https://files.example/v.mp4", "extra": 1}, "extra"),
                        ({}, "video_url"),
                        ({"video_url": "https://files.example/v.mp4", "challenge": "<script>"}, "challenge")):
        response = client.post(path, json=body, headers=AUTH)
        assert response.status_code == 422 and response.get_json()["error"]["field"] == field, body
    response = client.post(path, data="video", headers=AUTH, content_type="text/plain")
    assert response.status_code == 422 and "multipart" in response.get_json()["error"]["message"]
    assert juhe.requests == []


# -- hostile URLs --------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]", "127.1"])
def test_outside_sandbox_internal_addresses_are_refused_before_any_connection(make_app, juhe, files, spelling):
    client = make_app().test_client()  # JUHE_KEY set: production rules
    created = create(client, mode="number")
    drawn = challenge(client, created["id"])
    url = f"http://{spelling}:{files.server.server_port}/video.mp4"
    response = send_url(client, created["id"], url, drawn["id"])
    assert response.status_code == 422, response.get_json()
    error = SCHEMAS.check("/api/v1/sessions/{session_id}/video", "post", response)["error"]
    assert error["code"] == "invalid_video_url" and ("loopback" in error["message"])
    assert "请提供公网可访问的地址" in error["message_zh"] and "loopback" in error["message_zh"]
    assert files.requests == [] and juhe.requests == []


def pretend_public(name: str, address: str = "127.0.0.1"):
    """A check that lets `name` through as if it were public (it is our loopback file server)
    and applies the production rule to every other host, as the service does."""
    def check(url, allow_private, resolver=None):
        if targets.split(url)[1] == name:
            return targets.check(url, allow_private=True, resolver=lambda _h, _p: [address])
        return targets.check(url, allow_private=False, resolver=resolver)
    return check


@pytest.mark.parametrize("hop", ["http://127.0.0.1:{port}/video.mp4", "http://localhost:{port}/video.mp4",
                                 "http://10.0.0.7:{port}/video.mp4"])
def test_a_redirect_to_an_internal_address_is_refused_and_not_followed(make_app, juhe, files, hop):
    app = make_app()
    app.extensions["liveness_video_url"] = video_url.Fetcher(allow_private=False,
                                                            check=pretend_public("files.test"))
    client = app.test_client()
    created = create(client, mode="number")
    drawn = challenge(client, created["id"])
    target = hop.format(port=files.server.server_port)
    url = f"http://files.test:{files.server.server_port}/redirect?to={target}"
    response = send_url(client, created["id"], url, drawn["id"])
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid_video_url"
    assert files.requests == [f"/redirect?to={target}"]  # the first hop only
    assert juhe.requests == []


def test_a_redirect_to_a_public_host_is_followed_and_pinned(tmp_path, files):
    fetcher = video_url.Fetcher(allow_private=False, check=pretend_public("files.test"))
    port = files.server.server_port
    got = fetcher.fetch(f"http://files.test:{port}/redirect?to=http://files.test:{port}/video.mp4",
                        tmp_path / "v")
    assert got.redirects == 1 and (tmp_path / "v").read_bytes() == files.video
    assert files.requests == [f"/redirect?to=http://files.test:{port}/video.mp4", "/video.mp4"]


@pytest.mark.parametrize("path, code", [
    ("/slow", 267525), ("/trickle", 267525), ("/missing.mp4", 267524), ("/broken", 267535),
    ("/big", 267536), ("/big-unannounced", 267536), ("/empty", 267536), ("/page", 267537),
    ("/noise", 267537)])
def test_a_download_that_fails_is_answered_with_juhes_code_and_costs_no_attempt(make_app, juhe, files, path, code):
    client = make_app(VIDEO_URL_ALLOW_PRIVATE=True).test_client()
    created = create(client, mode="number")
    drawn = challenge(client, created["id"])
    response = send_url(client, created["id"], files.url(path), drawn["id"])
    answer = SCHEMAS.check("/api/v1/sessions/{session_id}/video", "post", response)
    assert response.status_code == 200
    assert answer["outcome"]["result"] == "rejected" and answer["outcome"]["code"] == str(code)
    assert answer["outcome"]["retry"] is True and answer["outcome"]["message"]
    assert answer["session"]["attempts"] == [] and answer["session"]["attempts_left"] == 3
    assert juhe.requests == []
    # No attempt was used. A failed download did not even use the challenge; a file that was
    # fetched and then refused by the local checks did, as on the page: draw another.
    retry_with = challenge(client, created["id"])["id"] if path == "/noise" else drawn["id"]
    again = send_url(client, created["id"], files.url("/video.mp4"), retry_with).get_json()
    assert again["outcome"]["result"] == "passed" and len(juhe.requests) == 1


def test_the_download_deadline_covers_the_whole_transfer(tmp_path, files):
    """A trickle whose every read succeeds still ends at the deadline, not when the file does."""
    fetcher = video_url.Fetcher(allow_private=True, seconds=1.0)
    with pytest.raises(video_url.FetchFailed) as failed:
        fetcher.fetch(files.url("/trickle"), tmp_path / "v")
    # Each read succeeds within the read timeout (a byte per 50 ms): only the deadline ends it.
    assert failed.value.code == 267525 and "longer than 1 s" in failed.value.detail


# -- the example operator (docs/operator-example) --------------------------------------------------
def test_the_example_operator_verifies_a_native_recording_and_fetches_its_best_frame(make_app, juhe, media,
                                                                                    monkeypatch):
    """docs/operator-example/bank_demo.py against the service on a real loopback server: its
    native-app routes draw the challenge, pass the recording on, and fetch the best frame."""
    import importlib.util

    service = make_app()
    server = make_server("127.0.0.1", 0, service, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        monkeypatch.setenv("LIVENESS_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("LIVENESS_KEY", "op-key-abcdef")
        path = Path(__file__).resolve().parent.parent / "docs" / "operator-example" / "bank_demo.py"
        spec = importlib.util.spec_from_file_location("operator_example", path)
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
        app = example.app.test_client()

        started = app.post("/native/start").get_json()
        assert len(started["challenge"]["digits"]) == 4
        with open(media("safari_fmp4"), "rb") as fh:
            answer = app.post(f"/native/{started['session_id']}/video", content_type="multipart/form-data",
                              data={"challenge": started["challenge"]["id"], "video": (fh, "clip.mp4")})
        assert answer.get_json() == {"result": "passed", "message": "核验通过。", "status": "passed"}
        assert juhe.requests[0]["form"]["validateData"] == started["challenge"]["digits"]
        frames = app.get(f"/frames/{started['session_id']}").get_json()
        assert frames["frames"] == 1 and frames["expires_at"]
    finally:
        server.shutdown()
        server.server_close()
