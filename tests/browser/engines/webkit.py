"""WebKitGTK's MiniBrowser in a Debian 13 root (scripts/webkit-root.sh), driven by WebKitWebDriver
(W3C WebDriver) through selenium.

Why a root: Debian 12's WebKitGTK records 0-byte MediaRecorder chunks; trixie's 2.54 records
video/mp4 (H.264 and AAC), as iOS Safari does. Everything runs inside the root without leaving
anything on the host: `unshare` gives each browser a private mount namespace (its /proc, /dev,
a tmpfs /dev/shm and a temporary folder of ours as /tmp are mounted there and vanish with it) and a
PID namespace, so killing its first process ends every process it started. The host's network is
shared, so the browser reaches a test server on http://localhost:<port> (a secure context, so
the camera is allowed) and we reach WebKitWebDriver on a loopback port.

One WebKitWebDriver serves one session at a time, so every page is a browser of its own: a
namespace with its own Xvfb, WebKitWebDriver and MiniBrowser (about 1–2 s to start). That also
gives every page a fresh profile (no cookies or storage of other tests) and its own language:
MiniBrowser takes navigator.language and Accept-Language from LANG, which needs the locale
generated in the root (the script makes zh_CN, en_GB and en_US).

Camera: WebKit's mock camera and microphone (`--enable-mock-capture-devices`), granted without a
prompt. WebKitGTK cannot be made to refuse them: WebKitWebDriver has no permissions command,
MiniBrowser no setting, and the MockCaptureDevicesPrompt feature is ignored under automation;
a top-level Permissions-Policy header is not applied either. So the refusal, like the face on
the camera (camera.js), is stood in by the test server, which injects a script into pages it
serves to WebKit. The server tells the two kinds of page apart by their user agent: MiniBrowser's
own, plus CAMERA_MARK[camera] (see `camera_of`).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    InvalidArgumentException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.remote.client_config import ClientConfig
from selenium.webdriver.remote.remote_connection import RemoteConnection
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.webkitgtk.options import Options

from . import CLICKABLE_JS, LOCATE_JS, EngineTimeout, JavaScriptError, wait_for

REPOSITORY = Path(__file__).resolve().parents[3]
ROOT_SCRIPT = REPOSITORY / "scripts" / "webkit-root.sh"
DEFAULT_ROOT = Path("/var/cache/liveness-tests/webkit-trixie")
MINIBROWSER = "usr/lib/*/webkit2gtk-4.1/MiniBrowser"  # in the root; the folder names the arch
BUILD_TIMEOUT = 1800    # seconds for scripts/webkit-root.sh to build the root (a few minutes)
START_TIMEOUT = 30      # seconds for Xvfb and WebKitWebDriver to listen (a loaded 2-core machine)
SESSION_TIMEOUT = 60    # seconds for WebKitWebDriver to start MiniBrowser and open a session
LOAD_TIMEOUT = 30       # seconds for a page's load event
CALL_TIMEOUT = 90       # seconds for a called function's promise to settle
COMMAND_TIMEOUT = CALL_TIMEOUT + 30  # seconds for any one WebDriver command to be answered

# Appended to MiniBrowser's user agent: how the test server knows a page is WebKit's, and whether
# its camera is to be refused.
CAMERA_MARK = {True: "LivenessTest/camera", False: "LivenessTest/no-camera"}

# MiniBrowser's toolbar (7 buttons and the address entry) keeps its window at least 447 px
# wide; without their padding it fits in 290, so a 320 px phone viewport is possible.
GTK_CSS = "button, entry { min-width: 0; min-height: 0; padding: 0; margin: 0; border-width: 0; }\n"

# In a new mount and PID namespace (this shell is its first process): mount what the browser
# needs into the root, then in it start Xvfb on a free display (it writes the number to fd 3)
# and WebKitWebDriver, and stay to reap the processes the namespace's orphans leave behind.
# Arguments: the root, the folder mounted as /tmp, the driver's port.
LAUNCH = r"""
set -e
mount -t proc proc "$1/proc"
mount --rbind /dev "$1/dev"
mount -t tmpfs -o mode=1777 shm "$1/dev/shm"
mount --bind "$2" "$1/tmp"
exec chroot "$1" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 /bin/sh -c '
  mkfifo /tmp/.display
  Xvfb -displayfd 3 -screen 0 2600x2100x24 -nolisten tcp 3>/tmp/.display &
  read display </tmp/.display || true
  [ -n "$display" ] || { echo "Xvfb did not start" >&2; exit 1; }
  echo "Xvfb on :$display"
  DISPLAY=:$display WebKitWebDriver --port="$0" &
  wait $!
' "$3"
"""

# CLICKABLE_JS as a WebDriver script: its arguments, the returned element a WebElement.
CLICKABLE_SCRIPT = f"return ({CLICKABLE_JS})(...arguments);"
# Calls a function expression with the script's arguments and hands its (awaited) outcome to
# WebDriver's callback, the last argument.
CALL_JS = """const done = arguments[arguments.length - 1];
const args = Array.prototype.slice.call(arguments, 0, -1);
Promise.resolve().then(() => (%s)(...args)).then(
  (value) => done({value: value === undefined ? null : value}),
  (error) => done({error: String(error && error.stack ? `${error}\\n${error.stack}` : error)}));"""
# A click that found the element but could not land on it: the page replaced, moved or covered
# it (tried again until the limit). WebKit answers "invalid argument" for an element that moved
# out of reach between finding and clicking.
MISSED = (StaleElementReferenceException, ElementClickInterceptedException,
          ElementNotInteractableException, InvalidArgumentException)


def build_root() -> Path:
    """Build the root once (scripts/webkit-root.sh reuses a complete one); return where it is."""
    root = Path(os.environ.get("WEBKIT_ROOT", DEFAULT_ROOT))
    subprocess.run(["bash", str(ROOT_SCRIPT)], check=True, timeout=BUILD_TIMEOUT,
                   env={**os.environ, "WEBKIT_ROOT": str(root)}, stdin=subprocess.DEVNULL)
    return root


def camera_of(user_agent: str) -> bool | None:
    """For the test server: True if the page asking is a WebKit page with the camera, False if
    its camera is to be refused, None if it is not a WebKit test page."""
    for camera, mark in CAMERA_MARK.items():
        if user_agent.endswith(" " + mark):
            return camera
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: be killed if the test process dies, so that a crashed test run
    leaves no browser behind (unshare's --kill-child then ends the whole namespace). Linux ties
    this to the thread that started the child: start browsers from one that outlives them."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class _Browser:
    """One MiniBrowser and its WebDriver session, in a namespace of its own over the root."""

    def __init__(self, root: Path, language: str, user_agent: str | None):
        found = sorted(root.glob(MINIBROWSER))
        if not found:
            raise RuntimeError(f"no MiniBrowser in {root}: run scripts/webkit-root.sh")
        self.directory = Path(tempfile.mkdtemp(prefix="webkit-"))
        self.tmp = self.directory / "tmp"  # the browser's /tmp
        (self.tmp / ".config" / "gtk-3.0").mkdir(parents=True)
        (self.tmp / ".config" / "gtk-3.0" / "gtk.css").write_text(GTK_CSS)
        self.log = self.directory / "webkit.log"
        self.driver: webdriver.Remote | None = None
        port = _free_port()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                 "--kill-child", "sh", "-c", LAUNCH, "sh", str(root), str(self.tmp), str(port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=_die_with_parent)
        try:
            self._wait_for_driver(port)
            options = Options()
            # env sets MiniBrowser's own environment (WebKitWebDriver passes on its own).
            options.binary_location = "/usr/bin/env"
            for argument in [f"LANG={language}", "GDK_SCALE=2",  # 2 device pixels per CSS pixel
                             "/" + str(found[0].relative_to(root)), "--automation",
                             "--enable-mock-capture-devices=true", "--enable-media-stream=true",
                             *([f"--user-agent={user_agent}"] if user_agent else [])]:
                options.add_argument(argument)
            # The client's timeout bounds every command; a new session may take SESSION_TIMEOUT.
            config = ClientConfig(f"http://127.0.0.1:{port}", timeout=SESSION_TIMEOUT)
            try:
                self.driver = webdriver.Remote(RemoteConnection(client_config=config),
                                               options=options)
            except Exception as error:
                raise RuntimeError(f"WebKitWebDriver opened no MiniBrowser session (waited at "
                                   f"most {SESSION_TIMEOUT} s): {error}; {self._log_end()}") from None
            config.timeout = COMMAND_TIMEOUT
            self.driver.set_page_load_timeout(LOAD_TIMEOUT)
            self.driver.set_script_timeout(CALL_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def _wait_for_driver(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb and WebKitWebDriver did not start listening within "
                                   f"{START_TIMEOUT} s (exit code {self.process.returncode}); "
                                   f"{self._log_end()}")
            time.sleep(0.05)

    def _log_end(self) -> str:
        return f"the log ends:\n{self.log.read_text(errors='replace')[-2000:]}"

    def close(self) -> None:
        """Quit MiniBrowser, then kill the namespace (and with it everything started in it)."""
        driver, self.driver = self.driver, None
        try:
            if driver is not None:
                driver.quit()
        except Exception:  # the session or driver is gone already: the kill below ends the rest
            pass
        finally:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
            shutil.rmtree(self.directory, ignore_errors=True)


class WebKitEngine:
    """MiniBrowser pages over one root; each page is a browser of its own (see the module)."""

    name = "webkit"

    def __init__(self, root: Path | None = None):
        self.root = root or build_root()
        self._pages: list[WebKitPage] = []
        # MiniBrowser's own user agent, to which each page's CAMERA_MARK is appended.
        probe = _Browser(self.root, "C.UTF-8", None)
        try:
            self.user_agent = probe.driver.execute_script("return navigator.userAgent")
        finally:
            probe.close()

    def new_page(self, *, camera: bool = True, locale: str = "zh-CN",
                 width: int = 360, height: int = 740) -> WebKitPage:
        page = WebKitPage(self.root, user_agent=f"{self.user_agent} {CAMERA_MARK[camera]}",
                          camera=camera, locale=locale, width=width, height=height)
        self._pages.append(page)
        return page

    def close(self) -> None:
        for page in self._pages:
            page.close()
        self._pages.clear()


class WebKitPage:
    """A phone-sized MiniBrowser window with its own profile, language and user agent."""

    engine = "webkit"

    def __init__(self, root: Path, *, user_agent: str, camera: bool, locale: str,
                 width: int, height: int):
        self.camera, self.locale = camera, locale
        self._uploads = 0
        self._browser = _Browser(root, locale.replace("-", "_") + ".UTF-8", user_agent)
        self.driver = self._browser.driver
        try:
            self.user_agent: str = self.driver.execute_script("return navigator.userAgent")
            language = self.driver.execute_script("return navigator.language")
            if language != locale:
                raise RuntimeError(f"MiniBrowser speaks {language!r}, not {locale!r}: is the "
                                   f"locale generated in the root (scripts/webkit-root.sh)?")
            self._set_viewport(width, height)
        except BaseException:
            self.close()
            raise

    def _set_viewport(self, width: int, height: int) -> None:
        """Size the window so that the page gets `width` x `height` CSS pixels: WebDriver sizes
        the whole window, toolbar included, so grow it by what the toolbar takes."""
        inner = "return [innerWidth, innerHeight]"
        self.driver.set_window_rect(width=width, height=height)
        # The resize lands a little later: measure once the page sees the window's new width.
        got_width, got_height = wait_for(
            lambda: (seen := self.driver.execute_script(inner))[0] <= width and seen,
            f"the window to be {width} px wide", timeout=5)
        self.driver.set_window_rect(width=2 * width - got_width, height=2 * height - got_height)
        try:
            wait_for(lambda: self.driver.execute_script(inner) == [width, height],
                     f"a {width}x{height} viewport", timeout=5)
        except EngineTimeout:
            raise EngineTimeout(f"MiniBrowser's viewport is {self.driver.execute_script(inner)}, "
                                f"not {width}x{height} (its window is at least 290 px wide)") from None

    def goto(self, url: str) -> None:
        try:
            self.driver.get(url)
        except TimeoutException:
            raise EngineTimeout(f"waited {LOAD_TIMEOUT} s for {url} to load") from None

    def call(self, function: str, *args: Any) -> Any:
        try:
            outcome = self.driver.execute_async_script(CALL_JS % function, *args)
        except TimeoutException:
            raise EngineTimeout(f"waited {CALL_TIMEOUT} s for {function[:80]!r} to settle") from None
        if "error" in outcome:
            raise JavaScriptError(outcome["error"])
        return outcome["value"]

    def click(self, role: str, name: str, *, exact: bool = False, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            element = wait_for(lambda: self._find(CLICKABLE_SCRIPT, role, name, exact),
                               f"a clickable {role} {name!r}",
                               max(deadline - time.monotonic(), 0))
            try:
                element.click()
                return
            except MISSED as error:
                if time.monotonic() > deadline:
                    raise EngineTimeout(f"waited {timeout:.0f} s to click {role} {name!r}; "
                                        f"last seen: {error.msg}") from None
                time.sleep(0.1)

    def set_file(self, label: str, path: Path, *, timeout: float = 15) -> None:
        """The browser sees only the root: the file is copied into its /tmp first."""
        self._uploads += 1
        folder = self._browser.tmp / "uploads" / str(self._uploads)
        folder.mkdir(parents=True)
        shutil.copyfile(path, folder / path.name)
        element = wait_for(lambda: self._find(f"return ({LOCATE_JS})(...arguments);",
                                              "file", label, False),
                           f"a file input {label!r}", timeout)
        element.send_keys(f"/tmp/uploads/{self._uploads}/{path.name}")

    def _find(self, script: str, role: str, name: str, exact: bool) -> WebElement | None:
        try:
            return self.driver.execute_script(script, role, name, exact)
        except StaleElementReferenceException:
            return None

    def screenshot(self, path: Path) -> None:
        path.write_bytes(self.driver.get_screenshot_as_png())

    def close(self) -> None:
        self._browser.close()
