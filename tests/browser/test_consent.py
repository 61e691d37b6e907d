"""Consent first: before the camera opens, the page says who asks, what is recorded, where it
goes and how long it is kept; nothing is asked of the camera (or the server) until the person
agrees, and declining says what to do instead."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import screenshot
from .test_capture_page import NUMBER_TITLE, agree, live_region, shown_digits, start_button

# Test instrumentation: count the page's calls for the camera.
COUNT_CAMERA_CALLS = """
window.__cameraCalls = 0;
const real = navigator.mediaDevices && navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
if (real) navigator.mediaDevices.getUserMedia = (c) => { window.__cameraCalls += 1; return real(c); };
"""


def consent(page):
    return page.get_by_role("region", name="开始前，请先确认")


def test_nothing_is_recorded_or_asked_for_before_the_person_agrees(live_app, phone):
    done = live_app.operator_page("done")
    url, _ = live_app.new_session("number", return_url=done)
    page = phone(init_script=COUNT_CAMERA_CALLS)
    challenges = []
    page.on("request", lambda r: challenges.append(r.url) if r.url.endswith("/challenge") else None)
    page.goto(url)

    terms = consent(page)
    expect(terms).to_be_visible()
    expect(terms).to_contain_text("127.0.0.1")                    # who asks: the operator's host
    expect(terms).to_contain_text("声音")                         # number mode: the voice too
    expect(terms).to_contain_text("聚合数据")                     # where it goes
    expect(terms).to_contain_text("公安")                         # what it is compared with
    expect(terms).to_contain_text("30 天")                        # RETENTION_DAYS
    expect(start_button(page)).to_be_hidden()
    screenshot(page, "consent-number")
    page.wait_for_timeout(1_000)
    assert page.evaluate("window.__cameraCalls") == 0
    assert challenges == [], "a challenge was drawn before consent"

    page.get_by_role("button", name="同意并开始").click()
    shown_digits(page)
    expect(start_button(page)).to_be_enabled()
    assert page.evaluate("window.__cameraCalls") == 1
    assert len(challenges) == 1
    expect(consent(page)).to_be_hidden()


def test_declining_says_what_to_do_instead_and_can_be_undone(live_app, phone):
    url, _ = live_app.new_session("action")
    page = phone(init_script=COUNT_CAMERA_CALLS)
    page.goto(url)
    expect(consent(page)).to_contain_text("不录声音")             # action mode: no sound kept

    page.get_by_role("button", name="暂不核验").click()
    declined = page.get_by_role("region", name="没有开始核验")
    expect(declined).to_contain_text("没有收集任何信息")
    expect(declined).to_contain_text("其他核验方式")
    expect(page.get_by_role("button", name="同意")).to_be_hidden()
    screenshot(page, "declined")
    assert page.evaluate("window.__cameraCalls") == 0

    page.get_by_role("button", name="回到上一步").click()
    agree(page)
    expect(start_button(page)).to_be_enabled()


def test_english_consent_names_agree_and_keeps_the_chinese_word(live_app, phone):
    url, _ = live_app.new_session("silent")
    page = phone()
    page.goto(url + "?lang=en")
    terms = page.get_by_role("region", name="Before you start")
    expect(terms).to_contain_text("Juhe")
    expect(terms).to_contain_text("no sound")
    expect(terms).to_contain_text("30 days")
    button = page.get_by_role("button", name="Agree")
    expect(button).to_contain_text("同意")
    screenshot(page, "consent-en")
    button.click()
    expect(page.get_by_role("button", name="Start recording")).to_be_enabled()


def test_reloaded_with_an_open_challenge_it_asks_again_before_the_camera(live_app, phone):
    url, _ = live_app.new_session("number")
    page = phone(init_script=COUNT_CAMERA_CALLS)
    page.goto(url)
    agree(page)
    digits = shown_digits(page)
    page.reload()
    expect(consent(page)).to_be_visible()
    assert page.evaluate("window.__cameraCalls") == 0
    agree(page)
    expect(page.get_by_role("region", name=NUMBER_TITLE)).to_contain_text(digits)  # the same challenge
    expect(live_region(page)).not_to_contain_text("正在准备")
