"""One driver per browser engine, behind one small interface, so that tests/browser/flows.py
drives the capture page the same way in all three:

- ``chromium``: Debian's Chromium, driven by Playwright; its camera a y4m of a real face (the
  astronaut, talking) and its microphone a WAV of a voice-like tone; here its video track is
  replaced by the performing face of ``camera.js`` too (through a MediaStreamTrackGenerator, in
  a camera's pixel format), so the three engines film the same person.
- ``firefox``: Debian's Firefox ESR, driven over WebDriver BiDi (our client, ``bidi.py``); the
  engine's own fake camera and microphone (``media.navigator.streams.fake``), its video track
  replaced by a canvas showing the same face (``camera.js``, run before the page's scripts).
- ``webkit``: WebKitGTK's MiniBrowser in a Debian 13 root (scripts/webkit-root.sh), driven by
  WebKitWebDriver (W3C WebDriver); WebKit's mock camera and microphone, the video track
  replaced the same way.

The face performs (``camera.js``, pictures from ``tests/browser/faces.py``): ``?perform=`` on
the page's URL says what it does while recording (default ``follow``: as the prompts say).

A driver finds elements as a screen reader names them (``locate.js``: role and accessible name)
and clicks them with the engine's own input (a real pointer click, not ``element.click()``).
Every wait has a limit; a wait that runs out raises ``EngineTimeout`` with what was seen.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).parent
LOCATE_JS = (HERE / "locate.js").read_text()
CAMERA_JS = HERE / "camera.js"
FACE_URL = "/__test__/face.png"  # the picture camera.js draws; the test app serves it


# The element LOCATE_JS finds if it can be clicked (not disabled), scrolled to the middle; else
# null. Every driver clicks what this returns.
CLICKABLE_JS = f"""(...a) => {{
  const element = ({LOCATE_JS})(...a);
  if (!element || element.disabled || element.getAttribute('aria-disabled') === 'true') return null;
  element.scrollIntoView({{block: 'center', inline: 'center', behavior: 'instant'}});
  return element;
}}"""


class EngineTimeout(AssertionError):
    """A wait on the page ran out (an AssertionError, so pytest shows it as a failed check)."""


class JavaScriptError(RuntimeError):
    """A function called in the page threw, or its promise rejected."""


class Page(Protocol):
    """One tab of one engine, in a fresh profile/context (no cookies or storage of other tests)."""

    engine: str

    def goto(self, url: str) -> None:
        """Open `url` and wait for its load event (at most 30 s)."""

    def call(self, function: str, *args: Any) -> Any:
        """Call the JavaScript function expression `function` (e.g. "(a, b) => a + b") in the
        page with JSON-able `args`; return its JSON-able result (awaited if it is a promise)."""

    def click(self, role: str, name: str, *, exact: bool = False, timeout: float = 15) -> None:
        """Wait until a visible, enabled element with `role` and accessible `name` exists, scroll
        it into view and click it with the engine's own pointer input."""

    def set_file(self, label: str, path: Path, *, timeout: float = 15) -> None:
        """Choose `path` in the file input whose label is `label` (as a person picking a file)."""

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the viewport."""

    def close(self) -> None:
        """Close the tab and its context; stops its camera."""


class Engine(Protocol):
    """A running browser of one engine, kept for the whole test run."""

    name: str

    def new_page(self, *, camera: bool = True, locale: str = "zh-CN",
                 width: int = 360, height: int = 740) -> Page:
        """A new phone-sized tab. `camera` False: the engine refuses the camera and microphone
        (getUserMedia rejects with NotAllowedError)."""

    def close(self) -> None:
        """Quit the browser (and what it started)."""


# -- helpers every driver and flow shares -------------------------------------------------------
def find_js(role: str, name: str | None, exact: bool = False) -> tuple[str, list]:
    """The function and arguments that return the element (or null) for `role` and `name`."""
    return LOCATE_JS, [role, name, exact]


def wait_for(check, what: str, timeout: float = 15, every: float = 0.1):
    """Call `check()` until it returns something truthy (returned), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise EngineTimeout(f"waited {timeout:.0f} s for {what}; last seen: {last!r}")
        time.sleep(every)


def text_of(page: Page, role: str, name: str | None = None) -> str:
    """The visible text of the element with `role` and `name` ('' when there is none)."""
    return page.call(f"(...a) => {{ const e = ({LOCATE_JS})(...a); return e ? e.innerText : ''; }}",
                     role, name, False) or ""


def is_shown(page: Page, role: str, name: str | None = None, exact: bool = False) -> bool:
    return bool(page.call(f"(...a) => !!({LOCATE_JS})(...a)", role, name, exact))


def wait_text(page: Page, role: str, name: str | None, pattern: str | re.Pattern,
              timeout: float = 15) -> str:
    """Wait until the element's text contains `pattern` (a string, or a regex searched for);
    return that text."""
    def check():
        text = text_of(page, role, name)
        found = re.search(pattern, text) if isinstance(pattern, re.Pattern) else pattern in text
        return text if found else None
    try:
        return wait_for(check, f"{role} {name!r} to say {pattern!r}", timeout)
    except EngineTimeout as error:
        raise EngineTimeout(f"{error}; it says {text_of(page, role, name)!r}") from None
