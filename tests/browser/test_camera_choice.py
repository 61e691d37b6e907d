"""Camera choice: where the phone lists several front cameras, the person can pick one; the
choice is used at once and remembered for the next visit."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import screenshot
from .test_capture_page import agree

CAMERA_IN_USE = "document.getElementById('preview').srcObject?.getVideoTracks()[0]?.label ?? ''"
# A function, not a string to evaluate: the page's CSP forbids eval.
USING = f"(label) => ({CAMERA_IN_USE}) === label"


def test_with_two_front_cameras_the_chosen_one_is_used_and_remembered(live_app, phone, browser_with):
    browser = browser_with(None, fake_devices="device-count=2")   # Chromium's two test cameras
    url, _ = live_app.new_session("silent")
    page = phone(browser=browser)
    page.goto(url)
    agree(page)
    choice = page.get_by_role("combobox", name="摄像头", exact=True)
    expect(choice).to_be_visible()
    expect(choice.locator("option")).to_have_count(2)
    first = page.evaluate(CAMERA_IN_USE)
    other = next(o for o in choice.locator("option").all_inner_texts() if o != first)
    screenshot(page, "camera-choice")

    choice.select_option(label=other)
    page.wait_for_function(USING, arg=other)
    expect(page.get_by_role("button", name="开始")).to_be_visible()

    page.reload()          # a new visit: the same camera, without asking again
    agree(page)
    expect(choice).to_be_visible()
    page.wait_for_function(USING, arg=other)
    expect(choice).to_have_value(page.evaluate(
        "document.getElementById('preview').srcObject.getVideoTracks()[0].getSettings().deviceId"))


def test_with_one_camera_there_is_nothing_to_choose(live_app, phone):
    url, _ = live_app.new_session("silent")
    page = phone()
    page.goto(url)
    agree(page)
    expect(page.get_by_role("button", name="开始录制")).to_be_enabled()
    expect(page.get_by_role("combobox", name="摄像头", exact=True)).to_be_hidden()
