"""The file-input fallback (a browser that cannot record in the page): the challenge stays on
screen, with a hint to remember it before the phone's camera app covers the page."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import screenshot
from .test_capture_page import NUMBER_TITLE, agree, shown_digits

NO_RECORDER = "delete window.MediaRecorder;"


@pytest.mark.parametrize("viewport", [{"width": 320, "height": 568}, {"width": 390, "height": 844}])
def test_the_challenge_stays_on_screen_with_a_hint_to_remember_it(live_app, phone, viewport):
    url, _number = live_app.new_session("number")
    page = phone(init_script=NO_RECORDER, viewport=viewport)
    page.goto(url)
    agree(page)
    digits = shown_digits(page)
    remember = page.locator("#fallback-remember")
    expect(remember).to_contain_text("请先记住")
    expect(page.locator("#fallback-hint")).to_contain_text(" ".join(digits))
    # Before the camera app opens: the digits and the hint are on screen, without scrolling.
    for element in (page.get_by_role("region", name=NUMBER_TITLE), remember):
        expect(element).to_be_in_viewport()
    expect(page.locator("label.file")).to_be_visible()
    screenshot(page, f"fallback-remember-{viewport['width']}")


def test_in_english_too(live_app, phone):
    url, _number = live_app.new_session("action")
    page = phone(init_script=NO_RECORDER, locale="en-GB")
    page.goto(url + "?lang=en")
    page.get_by_role("button", name="Agree").click()
    expect(page.locator("#fallback-remember")).to_contain_text("remember it first")
    expect(page.locator("#fallback-hint")).to_contain_text("in this order")
