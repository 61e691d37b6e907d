"""The Firefox driver against a tiny page served here: what the cross-engine tests rely on."""
from __future__ import annotations

import io
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from PIL import Image

from . import FACE_URL, EngineTimeout, JavaScriptError, wait_for
from .bidi import BidiError, BidiTimeout
from .firefox import FirefoxEngine, FirefoxPage

PAGE = """<!doctype html><meta charset="utf-8"><title>driver test</title>
<p style="height: 2000px">long text before the controls</p>
<button id="start" disabled>开始录制</button>
<label for="video">选择视频</label><input id="video" type="file" hidden>
<script>
  window.clicks = [];
  window.chosen = null;
  setTimeout(() => { document.getElementById('start').disabled = false; }, 300);
  document.getElementById('start').addEventListener('click', (event) => {
    window.clicks.push({trusted: event.isTrusted, x: event.clientX, y: event.clientY});
  });
  document.getElementById('video').addEventListener('change', (event) => {
    const [file] = event.target.files;
    window.chosen = {name: file.name, size: file.size};
  });
</script>"""


def _face_jpeg() -> bytes:
    picture = io.BytesIO()
    Image.new("RGB", (720, 560), (205, 196, 184)).save(picture, "JPEG")
    return picture.getvalue()


class _Site(BaseHTTPRequestHandler):
    files: ClassVar = {"/": ("text/html; charset=utf-8", PAGE.encode()),
                       FACE_URL: ("image/jpeg", _face_jpeg())}
    languages: ClassVar[list[str]] = []  # Accept-Language of each request for the page

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/":
            self.languages.append(self.headers.get("Accept-Language", ""))
        kind, body = self.files.get(path, ("text/plain", b"not here"))
        self.send_response(200 if path in self.files else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # no access log in the test output
        pass


@pytest.fixture(scope="module")
def site():
    """http://localhost:<port>/: a secure context, as the capture page is in the tests."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def firefox():
    engine = FirefoxEngine()
    yield engine
    engine.close()


@pytest.fixture
def page(firefox, site):
    pages: list[FirefoxPage] = []

    def open_page(**options) -> FirefoxPage:
        pages.append(firefox.new_page(**options))
        pages[-1].goto(f"{site}/")
        return pages[-1]

    yield open_page
    for each in pages:
        each.close()


def test_values_cross_into_the_page_and_back_and_promises_are_awaited(page):
    tab = page()
    sent = {"text": "张三", "numbers": [1, 2.5, -3], "yes": True, "nothing": None, "empty": []}
    assert tab.call("(value) => value", sent) == sent
    assert tab.call("(a, b) => a + b", 2, 3) == 5
    assert tab.call("() => undefined") is None
    assert tab.call("() => new Promise((resolve) => setTimeout(() => resolve('later'), 50))") \
        == "later"
    with pytest.raises(JavaScriptError, match="nope"):
        tab.call("async () => { throw new Error('nope'); }")


def test_a_button_named_as_a_screen_reader_names_it_gets_a_real_click(page):
    """The button starts disabled and below the fold: the click waits for it, scrolls to it and
    clicks it as a person's pointer would (a trusted event, inside the button)."""
    tab = page()
    tab.click("button", "开始录制")
    clicks = tab.call("() => window.clicks")
    assert len(clicks) == 1 and clicks[0]["trusted"] is True
    box = tab.call("() => { const r = document.getElementById('start').getBoundingClientRect();"
                   " return [r.left, r.top, r.right, r.bottom]; }")
    assert box[0] <= clicks[0]["x"] <= box[2] and box[1] <= clicks[0]["y"] <= box[3]


def test_choosing_a_file_by_its_label_fires_change_with_its_name_and_size(page, tmp_path):
    video = tmp_path / "clip.webm"
    video.write_bytes(b"\x1a" * 1234)
    tab = page()
    tab.set_file("选择视频", video)
    chosen = wait_for(lambda: tab.call("() => window.chosen"), "the change event", timeout=5)
    assert chosen == {"name": "clip.webm", "size": 1234}


def test_with_the_camera_the_page_gets_live_video_of_the_face_and_live_audio(page):
    tab = page(camera=True)
    tracks = tab.call("""async () => {
      const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
      const video = document.createElement('video');
      video.muted = true;
      video.srcObject = stream;
      await video.play();
      const kinds = stream.getTracks().map((track) => [track.kind, track.readyState]).sort();
      return {kinds, width: video.videoWidth, height: video.videoHeight};
    }""")
    assert tracks == {"kinds": [["audio", "live"], ["video", "live"]], "width": 640, "height": 480}


def test_without_the_camera_firefox_itself_refuses_it(page):
    tab = page(camera=False)
    refusal = tab.call("""() => navigator.mediaDevices.getUserMedia({video: true, audio: true})
      .then(() => 'granted', (error) => [error.name, error instanceof DOMException])""")
    assert refusal == ["NotAllowedError", True]
    assert tab.call("async () => (await navigator.permissions.query({name: 'camera'})).state") \
        == "denied"


def test_a_wait_that_cannot_succeed_fails_within_its_limit(page):
    tab = page()
    started = time.monotonic()
    with pytest.raises(EngineTimeout, match="不存在的按钮"):
        tab.click("button", "不存在的按钮", timeout=1)
    assert time.monotonic() - started < 5


def test_pages_ask_for_chinese_unless_told_otherwise(page):
    _Site.languages.clear()
    chinese = page()
    english = page(locale="en-US")
    assert [language.split(",")[0] for language in _Site.languages] == ["zh-CN", "en-US"]
    assert chinese.call("() => navigator.language") == "zh-CN"
    assert english.call("() => new Intl.NumberFormat().resolvedOptions().locale") == "en-US"


def test_each_page_starts_without_the_storage_of_another(page):
    first = page()
    first.call("() => { localStorage.setItem('seen', 'yes'); document.cookie = 'seen=yes'; }")
    second = page()
    assert second.call("() => [localStorage.getItem('seen'), document.cookie]") == [None, ""]


def test_a_screenshot_is_a_phone_sized_png(page, tmp_path):
    tab = page(width=360, height=740)
    assert tab.call("() => [innerWidth, innerHeight, devicePixelRatio]") == [360, 740, 2]
    shot = tmp_path / "phone.png"
    tab.screenshot(shot)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (720, 1480)


def test_console_messages_of_the_page_reach_the_test_as_events(page):
    tab = page()
    tab.bidi.send("session.subscribe", {"events": ["log.entryAdded"], "contexts": [tab.context]})
    tab.call("() => console.warn('光线太暗')")
    entry = tab.bidi.wait_event("log.entryAdded", timeout=5,
                                match=lambda entry: entry["source"]["context"] == tab.context)
    assert (entry["level"], entry["text"]) == ("warn", "光线太暗")
    with pytest.raises(BidiTimeout, match=r"log\.entryAdded"):
        tab.bidi.wait_event("log.entryAdded", timeout=0.5)


def test_a_refused_command_says_which_command_and_why(page):
    tab = page()
    with pytest.raises(BidiError, match=r"browsingContext\.navigate: no such frame"):
        tab.bidi.send("browsingContext.navigate", {"context": "gone", "url": "about:blank"})
