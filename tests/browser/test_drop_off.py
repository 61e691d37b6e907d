"""Where people stop, as the operator's console counts them (issue 22): people who leave at the
consent screen, decline, are refused the camera, leave while being coached, record but never
send (the page's own check found the challenge missed), and one who passes, on two browsers the
console must tell apart. Their pages report each milestone with navigator.sendBeacon, and the
console's drop-off funnel shows each drop with the right counts per browser, the consent
receipt in the session, and what a person who declined left behind.

Real Chromium with a Firefox-on-Android and a Samsung Internet User-Agent (each family only
these people use in the suite's shared app, so their rows are exact), the performing fake camera
(engines/camera.js) and the real upload path."""
from __future__ import annotations

import re
import time

import requests
from playwright.sync_api import expect

from ..conftest import AUTH
from .conftest import PERFORMER_SCRIPT, screenshot
from .test_capture_page import agree, expect_passed, live_region, start_button
from .test_console import DESKTOP, sign_in

FIREFOX = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"
SAMSUNG = ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
           "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36")


def session_events(live_app, session_id: str) -> list[str]:
    view = requests.get(f"{live_app.url}/api/v1/sessions/{session_id}", headers=AUTH, timeout=10).json()
    return [e["name"] + (f":{e['detail']}" if e["detail"] else "") for e in view["events"]]


def reported(live_app, session_id: str, *names: str, seconds: float = 15) -> list[str]:
    """The session's events once every one of `names` has arrived (beacons are not awaited)."""
    deadline = time.monotonic() + seconds
    while True:
        events = session_events(live_app, session_id)
        if all(name in events for name in names):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {names}; the page reported {events}")
        time.sleep(0.25)


def test_the_console_funnel_shows_where_each_person_stopped_per_browser(live_app, standin, phone, browser):
    def person(agent: str, mode: str = "silent", camera: bool = True, perform: str | None = None):
        created, _ = live_app.create_session(mode)
        page = phone(camera=camera, user_agent=agent, init_script=PERFORMER_SCRIPT if perform else None)
        page.goto(created["url"] + (f"?perform={perform}" if perform else ""))
        expect(page.get_by_role("button", name="同意")).to_be_enabled()
        return created["id"], page

    # Firefox · Android: one leaves at the consent screen, one declines, one records but never sends.
    left, page = person(FIREFOX)
    assert reported(live_app, left, "opened", "consent_shown")
    page.close()
    declined, page = person(FIREFOX)
    page.get_by_role("button", name="暂不核验").click()
    expect(page.get_by_role("heading", name="没有开始核验")).to_be_visible()
    assert "consent_declined" in reported(live_app, declined, "consent_declined")
    still, page = person(FIREFOX, mode="action", perform="still")
    agree(page)
    expect(start_button(page)).to_be_enabled(timeout=20_000)
    start_button(page).click()
    expect(live_region(page)).to_contain_text("没有看到张嘴", timeout=30_000)
    assert "redo:missed_mouth" in reported(live_app, still, "recording_started", "redo:missed_mouth")
    page.close()

    # Samsung Internet · Android: one is refused the camera, one leaves while coached, one passes.
    refused, page = person(SAMSUNG, camera=False)
    agree(page)
    expect(live_region(page)).to_contain_text("权限被拒绝", timeout=20_000)
    events = reported(live_app, refused, "camera_refused:NotAllowedError", "fallback:denied")
    assert "camera_granted" not in events
    coached, page = person(SAMSUNG)
    agree(page)
    expect(start_button(page)).to_be_enabled(timeout=20_000)
    reported(live_app, coached, "camera_granted")
    page.close()
    passed, page = person(SAMSUNG)
    agree(page)
    expect(start_button(page)).to_be_enabled(timeout=20_000)
    start_button(page).click()
    expect_passed(page)
    events = reported(live_app, passed, "upload_sent", "verdict:passed")
    assert events.index("consent_given") < events.index("camera_granted") < events.index("recording_started") \
        < events.index("upload_sent") < events.index("verdict:passed"), events
    receipt = requests.get(f"{live_app.url}/api/v1/sessions/{passed}", headers=AUTH, timeout=10).json()["consent"]
    assert receipt["decision"] == "given" and receipt["language"] == "zh" and receipt["via"] == "page"

    context = browser.new_context(**DESKTOP)
    try:
        console = context.new_page()
        sign_in(console, live_app)
        console.goto(f"{live_app.url}/console/funnel?days=1")
        rows = console.locator("#drop-clients tbody tr")
        steps = ["打开", "同意", "摄像头", "录制", "发送", "通过"]
        counts = {}
        for name in ("Firefox · Android", "Samsung Internet · Android"):
            cells = rows.filter(has=console.get_by_role("rowheader", name=name)).locator("td")
            counts[name] = dict(zip(steps, [int(c) for c in cells.all_inner_texts()], strict=True))
        assert counts["Firefox · Android"] == {"打开": 3, "同意": 1, "摄像头": 1, "录制": 1, "发送": 0, "通过": 0}
        assert counts["Samsung Internet · Android"] == {"打开": 3, "同意": 3, "摄像头": 2, "录制": 1, "发送": 1,
                                                       "通过": 1}
        drop = console.locator("#drop")
        expect(drop.get_by_role("row", name=re.compile("^打开"))).to_contain_text("不同意 declined")
        expect(drop.get_by_role("row", name=re.compile("^摄像头"))).to_contain_text("离开了页面 left the page")
        expect(drop.get_by_role("row", name=re.compile("^录制"))).to_contain_text("missed_mouth")
        screenshot(console, "console-drop-off")

        # The person who passed: the receipt and the page's milestones, in the session's view.
        console.goto(f"{live_app.url}/console/sessions/{passed}")
        expect(console.locator("#consent")).to_contain_text("已同意")
        console.locator("#consent a").click()
        expect(console.locator("#consent-text")).to_contain_text("开始前，请先确认")
        console.go_back()
        expect(console.locator("#events")).to_contain_text("verdict")
        # The one who declined: a receipt of the decline, and nothing recorded.
        console.goto(f"{live_app.url}/console/sessions/{declined}")
        expect(console.locator("#consent")).to_contain_text("已拒绝")
    finally:
        context.close()


# The camera as OBS's virtual camera presents itself, delivering a small picture (test
# instrumentation over Chromium's fake camera: the label and the settings it reports).
VIRTUAL_CAMERA = """
Object.defineProperty(MediaStreamTrack.prototype, 'label', {
  get() { return this.kind === 'video' ? 'OBS Virtual Camera' : 'Default microphone'; },
});
const settings = MediaStreamTrack.prototype.getSettings;
MediaStreamTrack.prototype.getSettings = function () {
  const real = settings.call(this);
  return this.kind === 'video' ? { ...real, width: 176, height: 144 } : real;
};
"""


def test_a_virtual_camera_is_a_signal_on_the_attempt_not_a_verdict(live_app, standin, phone):
    created, _ = live_app.create_session("silent")
    page = phone(init_script=VIRTUAL_CAMERA, user_agent=SAMSUNG)
    page.goto(created["url"])
    agree(page)
    expect(start_button(page)).to_be_enabled(timeout=20_000)
    start_button(page).click()
    expect_passed(page)  # the person is not told anything else, and passes
    [attempt] = requests.get(f"{live_app.url}/api/v1/sessions/{created['id']}", headers=AUTH,
                             timeout=10).json()["attempts"]
    assert attempt["signals"] == [{"code": "virtual_camera", "detail": "obs"},
                                  {"code": "low_resolution", "detail": "176x144"}], attempt
    assert attempt["error_code"] == 0
