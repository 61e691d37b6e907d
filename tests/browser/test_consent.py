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


def test_best_frames_are_said_to_be_kept_as_long_as_BEST_FRAMES_RETENTION(live_app, phone):
    url, _ = live_app.new_session("silent", best_frames=2)
    page = phone()
    page.goto(url)
    terms = consent(page)
    expect(terms).to_contain_text("核验结果（姓名和证件号已打码）保留 30 天后删除")   # RETENTION_DAYS
    expect(terms).to_contain_text("从视频中选出的照片会交给发起方，本服务保留 3 天后删除")  # BEST_FRAMES_RETENTION


def test_a_phone_set_to_english_gets_the_english_consent_screen_without_asking(live_app, phone):
    url, _ = live_app.new_session("number")
    page = phone(locale="en-US")                  # Accept-Language: en-US, and navigator.language
    page.goto(url)
    terms = page.get_by_role("region", name="Before you start")
    expect(terms).to_be_visible()
    expect(terms).to_contain_text("your voice reading the digits")
    expect(page.get_by_role("link", name="中文")).to_be_visible()      # the switch still offered
    page.get_by_role("button", name="Agree").click()
    expect(page.get_by_role("button", name="Start recording")).to_be_enabled()


def test_without_accept_language_the_page_follows_the_phones_own_language(live_app, phone):
    url, _ = live_app.new_session("silent")
    page = phone(locale="en-US")

    asked = []

    def without_languages(route):                        # a browser (a WebView) that names no language
        asked.append(route.request.url)
        route.continue_(headers={**route.request.headers, "accept-language": ""})
    page.route(lambda u: "/v/" in u, without_languages)
    page.goto(url)
    expect(page.get_by_role("region", name="Before you start")).to_be_visible()
    assert "lang=" not in asked[0]
    assert "lang=en" in page.url                          # an explicit choice from here on
    page.get_by_role("link", name="中文").click()
    expect(consent(page)).to_be_visible()                 # the switch still works
