"""The WebKit driver (webkit.py) against a tiny page of our own, served on loopback and opened as
http://localhost:<port> (a secure context, so the camera is allowed): what the capture page's
tests rely on (calls, clicks, files, the camera, MediaRecorder's MP4) works in MiniBrowser."""
from __future__ import annotations

import http.server
import threading
import time

import pytest

from . import EngineTimeout, JavaScriptError
from .webkit import CAMERA_MARK, WebKitEngine, build_root, camera_of

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>driver test</title></head><body>
<button id="later" disabled onclick="clicks.push(event.isTrusted)">开始录制</button>
<label>选择视频 <input type="file" id="file"></label>
<script>
  window.clicks = [];
  setTimeout(() => { document.getElementById('later').disabled = false; }, 500);
</script>
</body></html>"""


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAGE on every path and remembers each request's headers."""

    def do_GET(self) -> None:
        self.server.headers.append(dict(self.headers))
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # no access log in the test output
        pass


@pytest.fixture(scope="session")
def webkit_root():
    """The Debian 13 root, built by scripts/webkit-root.sh on first need."""
    return build_root()


@pytest.fixture(scope="module")
def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.headers = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def engine(webkit_root):
    engine = WebKitEngine(webkit_root)
    yield engine
    engine.close()


@pytest.fixture
def page(engine, site):
    page = engine.new_page()
    page.goto(f"http://localhost:{site.server_port}/")
    yield page
    page.close()


def test_a_page_is_a_chinese_phone_that_says_it_is_webkit_with_a_camera(page, site):
    assert page.call("() => [innerWidth, innerHeight, devicePixelRatio, navigator.language]") \
        == [360, 740, 2, "zh-CN"]
    assert site.headers[-1]["Accept-Language"] == "zh-CN"
    assert site.headers[-1]["User-Agent"] == page.user_agent
    assert "AppleWebKit/" in page.user_agent and camera_of(page.user_agent) is True


def test_a_page_without_camera_says_so_in_its_user_agent(engine, site):
    page = engine.new_page(camera=False, locale="en-GB", width=320, height=568)
    try:
        page.goto(f"http://localhost:{site.server_port}/")
        assert page.user_agent.endswith(CAMERA_MARK[False]) and camera_of(page.user_agent) is False
        assert page.call("() => [innerWidth, innerHeight, navigator.language]") == [320, 568, "en-GB"]
        assert site.headers[-1]["Accept-Language"] == "en-GB"
    finally:
        page.close()
    assert page._browser.process.poll() is not None  # its namespace, and all in it, is gone


def test_call_returns_plain_values_and_awaits_promises(page):
    assert page.call("(a, b) => ({sum: a + b, both: [a, b], text: '中文', none: null})", 1, 2) \
        == {"sum": 3, "both": [1, 2], "text": "中文", "none": None}
    assert page.call("(ms) => new Promise((done) => setTimeout(() => done('later'), ms))", 300) \
        == "later"
    assert page.call("() => undefined") is None
    with pytest.raises(JavaScriptError, match="refused"):
        page.call("async () => { throw new Error('refused'); }")


def test_click_waits_for_the_button_to_be_enabled_and_clicks_it_for_real(page):
    page.click("button", "开始录制", exact=True, timeout=10)
    assert page.call("() => clicks") == [True]  # event.isTrusted: WebKit's own pointer input


def test_set_file_gives_the_input_that_file(page, tmp_path):
    video = tmp_path / "面孔.mp4"
    video.write_bytes(bytes(range(256)) * 100)
    page.set_file("选择视频", video)
    assert page.call("() => { const f = document.getElementById('file').files[0];"
                     " return [f.name, f.size]; }") == ["面孔.mp4", 25600]


def test_the_mock_camera_and_microphone_give_live_tracks(page):
    tracks = page.call("""async () => {
      const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
      const tracks = stream.getTracks().map((t) => [t.kind, t.readyState]);
      stream.getTracks().forEach((t) => t.stop());
      return tracks.sort();
    }""")
    assert tracks == [["audio", "live"], ["video", "live"]]


def test_media_recorder_records_mp4(page):
    mime_type, size = page.call("""async () => {
      const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
      const recorder = new MediaRecorder(stream);
      const parts = [];
      recorder.ondataavailable = (event) => parts.push(event.data);
      const stopped = new Promise((done) => { recorder.onstop = done; });
      recorder.start(500);
      await new Promise((done) => setTimeout(done, 2000));
      recorder.stop();
      await stopped;
      stream.getTracks().forEach((t) => t.stop());
      const blob = new Blob(parts, {type: recorder.mimeType});
      return [blob.type, blob.size];
    }""")
    print(f"MiniBrowser recorded {size} bytes of {mime_type}")
    assert "mp4" in mime_type and size > 10_000


def test_a_wait_that_cannot_succeed_times_out_in_time(page):
    started = time.monotonic()
    with pytest.raises(EngineTimeout, match="没有这个按钮"):
        page.click("button", "没有这个按钮", timeout=1)
    assert time.monotonic() - started < 3
