"""Chromium behind the engines' interface: Debian's Chromium driven by Playwright, its camera a y4m
of the astronaut's face and its microphone a voice-like tone (tests/browser/conftest.py makes
both). As in Firefox and WebKit, the camera's video track is then replaced by the performing face
of camera.js (an init script): Chromium's own devices are opened (its permission, its microphone),
only the picture is stood in, so the three engines film the same face doing the same things."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import CAMERA_JS, CLICKABLE_JS, FACE_URL, wait_for

PERFORMER = f"({CAMERA_JS.read_text().strip()})({json.dumps(FACE_URL)});\n"


class ChromiumPage:
    engine = "chromium"

    def __init__(self, context) -> None:
        self._context = context
        self.page = context.new_page()
        self.page.set_default_timeout(15_000)

    def goto(self, url: str) -> None:
        self.page.goto(url, timeout=30_000)

    def call(self, function: str, *args: Any) -> Any:
        return self.page.evaluate(f"(args) => ({function})(...args)", list(args))

    def _element(self, role: str, name: str, exact: bool):
        return self.page.evaluate_handle(f"(args) => ({CLICKABLE_JS})(...args)",
                                         [role, name, exact]).as_element()

    def click(self, role: str, name: str, *, exact: bool = False, timeout: float = 15) -> None:
        element = wait_for(lambda: self._element(role, name, exact), f"the {role} {name!r}", timeout)
        element.click(timeout=timeout * 1000)

    def set_file(self, label: str, path: Path, *, timeout: float = 15) -> None:
        element = wait_for(lambda: self._element("file", label, False), f"the file input {label!r}", timeout)
        element.set_input_files(str(path))

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path))

    def close(self) -> None:
        self._context.close()


class ChromiumEngine:
    name = "chromium"

    def __init__(self, browser, grant_origins: tuple[str, ...]) -> None:
        self._browser = browser
        self._origins = grant_origins

    def new_page(self, *, camera: bool = True, locale: str = "zh-CN",
                 width: int = 360, height: int = 740) -> ChromiumPage:
        context = self._browser.new_context(viewport={"width": width, "height": height},
                                            device_scale_factor=2, is_mobile=True, has_touch=True,
                                            locale=locale)
        if camera:  # without the permission, Chromium itself refuses getUserMedia
            for origin in self._origins:
                context.grant_permissions(["camera", "microphone"], origin=origin)
            context.add_init_script(PERFORMER)
        return ChromiumPage(context)

    def close(self) -> None:
        pass  # the browser belongs to the run's `browser` fixture
