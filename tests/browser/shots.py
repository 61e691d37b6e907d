"""Screenshots of every phase the tests can reach, at 390x844 and 320x568, in Chinese and English,
for a person to look at. Not a test module (the suite does not collect it); run it by name, with
SHOTS_DIR naming a folder outside the repository (default /tmp/liveness-shots):

    SHOTS_DIR=/work/shots .venv/bin/python -m pytest -q tests/browser/shots.py
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from ..conftest import create_session
from ..media import make_fixture
from .conftest import PERFORMER_SCRIPT, VERDICT_TIMEOUT_MS, next_idcard

SHOTS = os.environ.get("SHOTS_DIR") or "/tmp/liveness-shots"
SIZES = [pytest.param(size, lang, id=f"{size[0]}x{size[1]}-{lang}")
         for size in ((390, 844), (320, 568)) for lang in ("zh", "en")]
NO_RECORDER = "delete window.MediaRecorder;"
HIDE = ("Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));")


class Shots:
    def __init__(self, phone, size, lang):
        self.phone, self.size, self.lang = phone, size, lang
        self.folder = Path(SHOTS)
        self.folder.mkdir(parents=True, exist_ok=True)

    def page(self, **kwargs):
        locale = {"locale": "en-GB"} if self.lang == "en" else {}
        return self.phone(viewport={"width": self.size[0], "height": self.size[1]}, **locale, **kwargs)

    def url(self, url: str) -> str:
        return url + ("?lang=en" if self.lang == "en" else "")

    def take(self, page, phase: str) -> None:
        page.wait_for_timeout(300)  # transitions settle
        page.screenshot(path=str(self.folder / f"{self.size[0]}x{self.size[1]}-{self.lang}-{phase}.png"))


def status(page):
    return page.locator("#status")


@pytest.mark.parametrize("size, lang", SIZES)
def test_capture_phases(live_app, standin, phone, size, lang):
    shots = Shots(phone, size, lang)
    url, number = live_app.new_session("number")
    standin.script[number] = standin.SLOW  # long enough to see "verifying"
    page = shots.page()
    page.goto(shots.url(url))
    expect(page.locator("#agree")).to_be_enabled()
    shots.take(page, "01-consent")
    page.locator("#decline").click()
    shots.take(page, "02-declined")
    page.locator("#reconsider").click()
    page.locator("#agree").click()
    expect(page.locator("#start")).to_be_enabled(timeout=20_000)
    shots.take(page, "03-ready-number")
    page.evaluate(HIDE)
    expect(page.locator("#capture")).to_have_attribute("data-phase", "paused")
    shots.take(page, "04-paused")
    page.evaluate("Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});"
                  "document.dispatchEvent(new Event('visibilitychange'));")
    expect(page.locator("#start")).to_be_enabled(timeout=20_000)
    page.locator("#start").click()
    expect(page.locator("#capture")).to_have_attribute("data-phase", "countdown")
    shots.take(page, "05-countdown")
    expect(page.locator("#capture")).to_have_attribute("data-phase", "recording", timeout=8_000)
    page.wait_for_timeout(2_000)
    shots.take(page, "06-recording")
    expect(page.locator("#capture")).to_have_attribute("data-phase", "verifying", timeout=20_000)
    shots.take(page, "07-verifying")
    expect(page.locator("#capture")).to_have_attribute("data-phase", "passed", timeout=VERDICT_TIMEOUT_MS)
    shots.take(page, "08-passed")

    for mode in ("action", "silent"):
        url, _number = live_app.new_session(mode)
        page = shots.page(init_script=PERFORMER_SCRIPT)
        page.goto(shots.url(url) + ("&" if "?" in shots.url(url) else "?") + "perform=still")
        page.locator("#agree").click()
        expect(page.locator("#start")).to_be_enabled(timeout=20_000)
        shots.take(page, f"03-ready-{mode}")
        if mode == "action":  # a face that does nothing: caught before anything is sent
            page.locator("#start").click()
            expect(page.locator("#capture")).to_have_attribute("data-phase", "recording", timeout=8_000)
            page.wait_for_timeout(1_500)
            shots.take(page, "06-recording-action")
            expect(page.locator("#send-anyway")).to_be_visible(timeout=30_000)
            shots.take(page, "09-redo-action-missed")


@pytest.mark.parametrize("size, lang", SIZES)
def test_fallback_and_result_phases(live_app, standin, phone, media_dir, size, lang):
    shots = Shots(phone, size, lang)
    video = make_fixture("safari_fmp4", media_dir)
    url, number = live_app.new_session("number")
    standin.script[number] = 267517
    page = shots.page(init_script=NO_RECORDER)
    page.goto(shots.url(url))
    page.locator("#agree").click()
    expect(page.locator("#fallback-remember")).not_to_be_empty()
    shots.take(page, "10-fallback-unsupported")
    page.locator("#file").set_input_files(video)
    expect(page.locator("#retry")).to_be_visible(timeout=VERDICT_TIMEOUT_MS)
    shots.take(page, "11-retry")
    page.locator("#retry").click()
    expect(page.locator("#file")).to_be_enabled()
    page.locator("#file").set_input_files(video)
    expect(page.locator("#capture")).to_have_attribute("data-phase", "over", timeout=VERDICT_TIMEOUT_MS)
    shots.take(page, "12-over-attempts-used-up")

    url, _number = live_app.new_session("action")
    page = shots.page(camera=False)
    page.goto(shots.url(url))
    page.locator("#agree").click()
    expect(page.locator("#camera-again")).to_be_visible()
    shots.take(page, "13-fallback-camera-refused")

    url, _number = live_app.new_session("number")
    page = shots.page(init_script=NO_RECORDER)
    page.route("**/upload", lambda route: route.abort("connectionreset"))
    page.goto(shots.url(url))
    page.locator("#agree").click()
    page.locator("#file").set_input_files(video)
    expect(page.locator("#resend")).to_be_visible(timeout=VERDICT_TIMEOUT_MS)
    shots.take(page, "14-resend")

    done = live_app.operator_page("done")
    url, number = live_app.new_session("silent", return_url=done)
    standin.script[number] = 267509
    page = shots.page(init_script=NO_RECORDER)
    page.goto(shots.url(url))
    page.locator("#agree").click()
    page.locator("#file").set_input_files(video)
    expect(page.locator("#return")).to_be_visible(timeout=VERDICT_TIMEOUT_MS)
    shots.take(page, "15-over-identity-return")


@pytest.mark.parametrize("size, lang", SIZES)
def test_pages_around_it(live_app, phone, make_app, size, lang):
    shots = Shots(phone, size, lang)
    page = shots.page()
    page.goto(shots.url(f"{live_app.url}/"))
    shots.take(page, "20-form")
    page.locator("button[type=submit]").click()
    expect(page.locator(".error").first).to_be_visible()
    shots.take(page, "21-form-errors")
    page.goto(shots.url(f"{live_app.url}/v/no-such-link-0123456789"))
    shots.take(page, "22-link-unknown")

    # Pages this server does not show, drawn from other apps' answers on its origin.
    from webapp.extensions import services
    from webapp.storage import VerificationSession
    client = make_app(STANDALONE=False).test_client()
    page = shots.page()
    page.goto(f"{live_app.url}/healthz")
    page.set_content(client.get(shots.url("/")).get_data(as_text=True))
    shots.take(page, "23-closed")

    created, _person = create_session(client, idcard=next_idcard())
    with client.application.app_context(), services().store.session() as db:
        db.get(VerificationSession, created["id"]).expires_at = dt.datetime(2000, 1, 1)
        db.commit()
    page = shots.page()
    page.route("**/v/**", lambda route: route.fulfill(status=404, body="{}"))
    page.goto(f"{live_app.url}/healthz")
    page.set_content(client.get(shots.url(urlsplit(created["url"]).path)).get_data(as_text=True))
    page.evaluate("document.getElementById('expired-title').closest('section').removeAttribute('hidden')")
    shots.take(page, "24-link-expired")

    logo = ("data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCA4MCAyOCI+"
            "PHJlY3Qgd2lkdGg9IjgwIiBoZWlnaHQ9IjI4IiByeD0iNiIgZmlsbD0iIzBiNmU0ZiIvPjx0ZXh0IHg9IjQwIiB5PSIxOSIgZm9udC1zaXplPSIxNCIg"
            "dGV4dC1hbmNob3I9Im1pZGRsZSIgZmlsbD0iI2ZmZiI+QkFOSzwvdGV4dD48L3N2Zz4=")
    themed = make_app(OPERATOR_THEMES=json.dumps({"standalone": {"color": "#0b6e4f", "logo": logo, "name": "示例银行"}}))
    theme_client = themed.test_client()
    form = theme_client.get(shots.url("/")).get_data(as_text=True)
    page = shots.page()
    page.route("**/theme.css*", lambda route: route.fulfill(
        status=200, content_type="text/css",
        body=theme_client.get(urlsplit(route.request.url).path + "?" + urlsplit(route.request.url).query).get_data()))
    page.goto(f"{live_app.url}/healthz")
    page.set_content(form)
    shots.take(page, "25-form-themed")
