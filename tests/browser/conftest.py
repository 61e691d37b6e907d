"""Browser fixtures: the app on a real loopback server, the Juhe stand-in behind it, and
Debian's headless Chromium (driven by Playwright) whose camera and microphone are fed a
real face (skimage's astronaut) and a voice-like tone.

One server and one browser serve the whole run; each test gets a fresh phone-sized context.
Pages are opened on `localhost`, which browsers treat as a secure context (camera allowed).
"""
from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from playwright.sync_api import expect, sync_playwright

# A loaded 2-core CI machine is slow: give every expectation room (they return as soon as met).
from werkzeug.serving import WSGIRequestHandler, make_server

from ..conftest import OPERATOR_KEY, STANDIN_KEY, idcard
from . import faces
from .engines import CAMERA_JS, FACE_URL
from .engines.webkit import camera_of

expect.set_options(timeout=15_000)

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent / "screenshots"
PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True, "locale": "zh-CN"}
MAX_ATTEMPTS = 2
# A recording: 3 s countdown, 6 s video, then upload, ffmpeg and the stand-in.
VERDICT_TIMEOUT_MS = 60_000


class _QuietHandler(WSGIRequestHandler):
    def log(self, *args) -> None:  # no access log in the test output
        pass


# -- what the fake camera and microphone play ------------------------------------------------
def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args],
                   check=True, timeout=120)


# What the fake camera films, by name: the good face, and the problems the page must name before
# recording. Each is the same scene (the astronaut's face on a plain wall) with one thing changed.
FEEDS = {
    "face": {"talk": True},                                # talking gently (lips moving), in a loop
    "dark": {"gain": 0.12, "wall": (25, 24, 22)},          # a dim room
    "wall": {"size": 0},                                   # nobody in the picture
    "far": {"size": 400},                                  # the face at 40 %: the phone held far away
    "tiny": {"size": 260},                                 # the face a tenth of the picture's width
    "backlit": {"gain": 0.6, "window": True},              # a bright window behind the person
}


def _feed_y4m(directory: Path, name: str, talk: bool = False, **scene) -> Path:
    """A y4m of the scene FEEDS[name] describes, moving slightly (640x480, 20 fps, 4 s; Chromium
    loops it); made once per name and folder. `talk`: the face talks gently all along (its lips
    open and close as faces.TALK_FRAMES says, ~4 times a second), so that a check of moving lips
    in number mode passes. Firefox and WebKit pan over the same pictures in a canvas
    (engines/camera.js), and so does Chromium where a test installs it (PERFORMER_SCRIPT)."""
    from skimage import io

    y4m = directory / f"{name}.y4m"
    if y4m.exists():  # a running browser may be reading it
        return y4m
    png = _scene_png(directory, name, **scene)
    if not talk:
        _ffmpeg("-loop", "1", "-framerate", "20", "-i", str(png), "-t", "4",
                "-vf", "crop=640:480:x='40+12*sin(2*PI*t/4)':y='40+8*sin(2*PI*t/2)',format=yuv420p",
                "-f", "yuv4mpegpipe", str(y4m))
        return y4m
    pictures = {level: io.imread(faces.face_png(directory, picture))[..., :3]
                for level, picture in enumerate(("neutral", *faces.TALK))}
    frames = []
    for frame in range(80):
        t = frame / 20
        x, y = round(40 + 12 * np.sin(2 * np.pi * t / 4)), round(40 + 8 * np.sin(2 * np.pi * t / 2))
        level = faces.TALK_FRAMES[frame % len(faces.TALK_FRAMES)]
        frames.append(pictures[level][y:y + 480, x:x + 640])
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y",
                    "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "640x480", "-r", "20", "-i", "-",
                    "-vf", "format=yuv420p", "-f", "yuv4mpegpipe", str(y4m)],
                   input=np.stack(frames).astype(np.uint8).tobytes(), check=True, timeout=120)
    return y4m


def _scene_png(directory: Path, name: str, size: int = 1000, gain: float = 1.0,
               wall: tuple[int, int, int] = (205, 196, 184), window: bool = False,
               face: str = "neutral") -> Path:
    """A 720x560 picture of the face `size` pixels wide (0: none) at `gain` of its brightness on a
    `wall` (`window`: blown-out white all round the head), the face performing `face` (one of
    faces.PICTURES: eyes closed, mouth open...; only at size 1000); made once per name and folder."""
    from skimage import data, io, transform

    png = directory / f"{name}.png"
    if png.exists():
        return png
    if face != "neutral":  # the good face's scene, warped
        if (size, gain, wall, window) != (1000, 1.0, (205, 196, 184), False):
            raise ValueError("only the good face's scene (FEEDS['face']) performs")
        scene = io.imread(_scene_png(directory, "face"))[..., :3].astype(np.float64)
        io.imsave(png, faces.warp(scene, face).clip(0, 255).round().astype(np.uint8),
                  check_contrast=False)
        return png

    # The astronaut's face (around x 225, y 112 of 512) scaled to fill the page's oval (size 1000),
    # where the oval is in a 720x560 scene the 640x480 camera pans over a little.
    scene = np.empty((560, 720, 3), dtype=np.float64)
    scene[:] = wall
    if size:
        face_x, face_y = 225 / 512, 112 / 512
        picture = transform.resize(data.astronaut(), (size, size), order=3, anti_aliasing=True) * 255
        left, top = 360 - round(face_x * size), 250 - round(face_y * size)
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + size, 560), min(left + size, 720)
        scene[y0:y1, x0:x1] = picture[y0 - top:y1 - top, x0 - left:x1 - left] * gain
    if window:
        y, x = np.mgrid[0:560, 0:720]
        scene[((x - 360) / 165) ** 2 + ((y - 250) / 210) ** 2 > 1] = 255
    io.imsave(png, scene.clip(0, 255).round().astype(np.uint8), check_contrast=False)
    return png


@pytest.fixture(scope="session")
def camera_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("camera")


@pytest.fixture(scope="session")
def camera_files(camera_dir) -> tuple[Path, Path]:
    """The good face's y4m (talking gently, in a loop) and a 48 kHz 16-bit WAV of a voice-like
    tone, loud enough for any silence check."""
    wav = camera_dir / "voice.wav"
    voice = ("0.45*(sin(2*PI*140*t)+0.6*sin(2*PI*280*t)+0.3*sin(2*PI*420*t))"
             "*(0.6+0.4*sin(2*PI*2.2*t))")
    _ffmpeg("-f", "lavfi", "-i", f"aevalsrc=exprs='{voice}':s=48000:c=mono:d=6",
            "-c:a", "pcm_s16le", str(wav))
    return _feed_y4m(camera_dir, "face", **FEEDS["face"]), wav


# -- the app ---------------------------------------------------------------------------------
OPERATOR_PREFIX = "/__operator__/"
TEST_PREFIX = "/__test__/"  # the stand-in camera's script and picture (engines/camera.js)


# What a WebKit test page's camera does, stood in (engines/webkit.py marks its user agent): the
# face in a canvas, or a refusal (WebKitGTK grants its mock camera under automation, always).
WEBKIT_CAMERA = {True: "camera.js", False: "no-camera.js"}
# The performing face of engines/camera.js, for a Chromium test's `phone(init_script=...)`: the
# video track of Chromium's camera replaced by the face doing what the page's URL says
# (`?perform=follow`, the default; `still`, `swapped`...: see camera.js). The engines' tests
# (test_engines.py) get it in all three engines.
PERFORMER_SCRIPT = f"({CAMERA_JS.read_text().strip()})({FACE_URL!r});\n"
REFUSE_CAMERA = """if (navigator.mediaDevices) navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Permission denied (stood in)', 'NotAllowedError'));
"""


def _with_camera_script(app, environ, start_response, script: str):
    """The capture page as the app makes it, with the stand-in camera's `script` first in its
    head (WebDriver classic cannot run a script before the page's own: engines/__init__.py)."""
    environ = {**environ, "HTTP_ACCEPT_ENCODING": "identity"}  # the page plain, not gzipped
    answer = {}
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answer.update(
        status=status, headers=headers)))
    if b"<!doctype html>" in body[:1000]:
        tag = f'<head><script src="{TEST_PREFIX}{script}"></script>'.encode()
        body = body.replace(b"<head>", tag, 1)
    headers = [(k, v) for k, v in answer["headers"] if k.lower() != "content-length"]
    start_response(answer["status"], [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _with_operator_pages(app, pages: dict[str, str], lose_answers: set[str],
                         test_files: dict[str, tuple[bytes, str]]):
    """Serve test pages of an "operator" under OPERATOR_PREFIX, the stand-in camera's files
    under TEST_PREFIX, the rest by the app. Reached as http://127.0.0.1:<port> they are another
    site than the capture page (localhost), over real loopback HTTP, so Chromium's local-network
    checks see what they would see in production.

    For a path in `lose_answers` the app answers in full, then the connection drops before a
    byte of the answer leaves (a phone losing its network while the server verifies). A capture
    page opened by WebKit gets the stand-in camera's script."""
    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(TEST_PREFIX) and path[len(TEST_PREFIX):] in test_files:
            body, kind = test_files[path[len(TEST_PREFIX):]]
            start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body))),
                                      ("Cache-Control", "no-store")])
            return [body]
        camera = camera_of(environ.get("HTTP_USER_AGENT", ""))
        if path.startswith("/v/") and path.count("/") == 2 and camera is not None:
            return _with_camera_script(app, environ, start_response, WEBKIT_CAMERA[camera])
        if path in lose_answers:
            b"".join(app(environ, lambda *args, **kwargs: None))
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            start_response("200 OK", [("Content-Length", "0")])
            return []
        if not path.startswith(OPERATOR_PREFIX):
            return app(environ, start_response)
        body = pages.get(path[len(OPERATOR_PREFIX):], "<!doctype html><p>operator page</p>").encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return dispatch


class LiveApp:
    """The app served on 127.0.0.1 and reached as http://localhost:<port>."""

    def __init__(self, app, port: int, operator_pages: dict[str, str], lose_answers: set[str]):
        self.app, self.port = app, port
        self.url = f"http://localhost:{port}"
        self.operator_origin = f"http://127.0.0.1:{port}"
        self._operator_pages = operator_pages
        self._lose_answers = lose_answers

    def lose_upload_answers(self, page_url: str) -> None:
        """From now on the uploads of this page are verified, but their answers are lost."""
        self._lose_answers.add(urlsplit(page_url).path + "/upload")

    def operator_page(self, name: str, html: str | None = None) -> str:
        """The URL of an operator's page `name` (serving `html` when given)."""
        if html is not None:
            self._operator_pages[name] = html
        return f"{self.operator_origin}{OPERATOR_PREFIX}{name}"

    def new_session(self, mode: str, **extra) -> tuple[str, str]:
        """Create a session through the operator API; returns (page URL, ID number)."""
        created, number = self.create_session(mode, **extra)
        return created["url"], number

    def create_session(self, mode: str, **extra) -> tuple[dict, str]:
        """Create a session through the operator API; returns (its JSON, ID number)."""
        number = extra.pop("idcard", None) or next_idcard()
        response = requests.post(f"{self.url}/api/v1/sessions", timeout=10,
                                 headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
                                 json={"realname": "张三", "idcard": number, "mode": mode, **extra})
        assert response.status_code == 201, response.text
        return response.json(), number

    def session(self, session_id: str) -> dict:
        """What the operator reads of a session (GET /api/v1/sessions/<id>)."""
        response = requests.get(f"{self.url}/api/v1/sessions/{session_id}", timeout=10,
                                headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        assert response.status_code == 200, response.text
        return response.json()


_sequence = iter(range(700, 1000))


def next_idcard() -> str:
    """A fresh valid ID number per session, so the stand-in's script and log stay per test."""
    return idcard(next(_sequence), birth="19900307")


@pytest.fixture(scope="session")
def live_app(standin, tmp_path_factory, camera_dir):
    """The app, talking to the Juhe stand-in, served by a real threaded server. An operator's
    page at http://127.0.0.1:<port> (another site than localhost) may frame it."""
    from webapp import create_app

    tmp = tmp_path_factory.mktemp("browser-app")
    holder = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: holder["app"](environ, start),
                         threaded=True, request_handler=_QuietHandler)
    operator_pages: dict[str, str] = {}
    lose_answers: set[str] = set()
    port = server.server_port
    holder["app"] = create_app({
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "SECRET_KEY": "browser-test-secret-0123456789",
        "JUHE_KEY": STANDIN_KEY, "JUHE_API_URL": standin.url, "JUHE_READ_TIMEOUT": 30.0,
        "OPERATOR_API_KEYS": OPERATOR_KEY, "MAX_ATTEMPTS": MAX_ATTEMPTS,
        "EMBED_ORIGINS": f"http://127.0.0.1:{port}",
        "BACKGROUND_TASKS": False, "RATELIMIT_ENABLED": False,
        "STANDALONE": True,  # the self-service form too (its page goes back to it)
    })
    # The face camera.js draws (what Chromium's camera films too), and beside it the same face
    # performing (face-mouth.png...: tests/browser/faces.py).
    face_dir = FACE_URL.removeprefix(TEST_PREFIX).rpartition("/")[0]
    test_files = {
        f"{face_dir}/{png.name}".lstrip("/"): (png.read_bytes(), "image/png")
        for png in (faces.face_png(camera_dir, picture) for picture in faces.PICTURES)}
    test_files.update({
        "camera.js": (PERFORMER_SCRIPT.encode(), "text/javascript"),
        "no-camera.js": (REFUSE_CAMERA.encode(), "text/javascript"),
    })
    holder["app"] = _with_operator_pages(holder["app"], operator_pages, lose_answers, test_files)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="browser-app")
    thread.start()
    yield LiveApp(holder["app"], port, operator_pages, lose_answers)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# -- the browser -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def playwright_driver():
    with sync_playwright() as playwright:
        yield playwright


def _launch(playwright, video: Path | None, audio: Path, fake_devices: str = ""):
    """Headless Debian Chromium with a fake camera and microphone. There is no fake consent
    UI: a context with the camera permission gets the camera, one without is refused. `video`
    None: Chromium's own moving test pattern (with `fake_devices` such as "device-count=2")."""
    fake = "--use-fake-device-for-media-stream" + (f"={fake_devices}" if fake_devices else "")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        fake,
        # Third-party cookies off, as in Safari or Chrome's incognito: the framed page must
        # not need one.
        "--test-third-party-cookie-phaseout",
        # A name that is not localhost: pages opened there are not a secure context.
        "--host-resolver-rules=MAP insecure.test 127.0.0.1",
        *([f"--use-file-for-fake-video-capture={video}"] if video else []),
        f"--use-file-for-fake-audio-capture={audio}",
    ])


@pytest.fixture(scope="session")
def browser(playwright_driver, camera_files):
    """The browser whose camera films the good face (and whose microphone hears a voice)."""
    y4m, wav = camera_files
    browser = _launch(playwright_driver, y4m, wav)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def browser_with(playwright_driver, camera_dir, camera_files):
    """`browser_with(feed="face", sound=True, fake_devices="")` → a browser (one per kind, kept
    for the run) whose camera films FEEDS[feed] (None: Chromium's test pattern) and whose
    microphone hears the voice, or digital silence."""
    launched = {}

    def get(feed: str | None = "face", sound: bool = True, fake_devices: str = ""):
        key = (feed, sound, fake_devices)
        if key not in launched:
            video = _feed_y4m(camera_dir, feed, **FEEDS[feed]) if feed else None
            audio = camera_files[1]
            if not sound:
                audio = camera_dir / "silence.wav"
                if not audio.exists():
                    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "6",
                            "-c:a", "pcm_s16le", str(audio))
            launched[key] = _launch(playwright_driver, video, audio, fake_devices)
        return launched[key]

    yield get
    for browser in launched.values():
        browser.close()


@pytest.fixture
def phone(browser, live_app):
    """`phone(camera=True, init_script=None, browser=None, **context)` → a new page in a
    phone-sized context (of `browser`, else the good face's)."""
    contexts = []

    def open_page(camera: bool = True, init_script: str | None = None, browser=browser, **context):
        context = browser.new_context(**{**PHONE, **context})
        if camera:
            for origin in (live_app.url, live_app.operator_origin):
                context.grant_permissions(["camera", "microphone"], origin=origin)
        if init_script:
            context.add_init_script(init_script)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> None:
    """Save a phone-sized screenshot to tests/browser/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
