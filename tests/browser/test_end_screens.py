"""Screens that do not confuse (issue 21): a link that expires on the page, final screens that
stay until the person leaves, sending and verifying that still show what was asked, and words
said once, correctly."""
from __future__ import annotations

import datetime as dt
import re

from playwright.sync_api import expect

from ..media import make_fixture
from .conftest import VERDICT_TIMEOUT_MS, screenshot
from .test_capture_page import NO_RECORDER, SILENT_TITLE, agree, live_region, record, start_button

MISMATCH = 267509   # name and ID number do not match: final
TOO_DARK = 267517   # a retry can fix it
# Test instrumentation (not page code): every camera and microphone track the page opened.
TRACKS = """
window.__tracks = [];
const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (c) => {
  const s = await open(c); window.__tracks.push(...s.getTracks()); return s;
};
"""


def expire(live_app, session_id: str) -> None:
    """The session's time runs out now (as SESSION_TTL would, without waiting for it)."""
    from webapp.extensions import services
    from webapp.storage import VerificationSession

    dispatch = live_app.app  # conftest wraps the Flask app (its `app`) for the operator's pages
    flask_app = dict(zip(dispatch.__code__.co_freevars, dispatch.__closure__))["app"].cell_contents
    with flask_app.app_context(), services().store.session() as db:
        db.get(VerificationSession, session_id).expires_at = dt.datetime(2000, 1, 1)
        db.commit()


def seen(locator) -> int:
    """How many of the matches a person can see (a screen reader's hidden copy is 1 px)."""
    boxes = [locator.nth(i).bounding_box() for i in range(locator.count())]
    return sum(1 for box in boxes if box and box["width"] > 2 and box["height"] > 2)


# -- 1. a link that expires while the person is on the page ------------------------------------
def test_a_link_that_expires_on_the_page_offers_no_retry_and_a_way_back(live_app, phone, media_dir):
    done = live_app.operator_page("done")
    created, _number = live_app.create_session("silent", return_url=f"{done}?ref=21")
    page = phone(init_script=NO_RECORDER)
    page.goto(created["url"])
    agree(page)
    expect(page.get_by_label("拍摄视频")).to_be_enabled()
    expire(live_app, created["id"])  # the person took too long
    page.get_by_label("拍摄视频").set_input_files(make_fixture("safari_fmp4", media_dir))

    expect(live_region(page)).to_contain_text("已过期", timeout=VERDICT_TIMEOUT_MS)
    expect(live_region(page)).to_contain_text("重新发起")
    expect(live_region(page)).not_to_contain_text("再试")
    expect(page.get_by_role("button", name=re.compile("重新|开始"))).to_have_count(0)
    back = page.get_by_role("link", name="返回")
    expect(back).to_have_attribute("href", re.compile(re.escape(f"{done}?ref=21&session_id={created['id']}")))
    screenshot(page, "expired-on-the-page")
    back.click()
    page.wait_for_url(re.compile(re.escape(f"{done}?ref=21&session_id=")))


def test_a_link_that_expired_without_return_url_says_where_to_start_again(live_app, phone, media_dir):
    created, _number = live_app.create_session("silent")
    page = phone(init_script=NO_RECORDER)
    page.goto(created["url"])
    agree(page)
    expect(page.get_by_label("拍摄视频")).to_be_enabled()
    expire(live_app, created["id"])
    page.get_by_label("拍摄视频").set_input_files(make_fixture("safari_fmp4", media_dir))
    expect(live_region(page)).to_contain_text("已过期", timeout=VERDICT_TIMEOUT_MS)
    expect(live_region(page)).to_contain_text("回到发给您链接的网站或应用")
    expect(page.get_by_role("button", name=re.compile("重新|开始"))).to_have_count(0)


# -- 2. final screens stay until the person leaves; a pass counts down --------------------------
def test_a_final_failure_stays_until_the_person_taps_return(live_app, standin, phone, media_dir):
    done = live_app.operator_page("done")
    url, number = live_app.new_session("silent", return_url=f"{done}?ref=22")
    standin.script[number] = MISMATCH
    page = phone(init_script=NO_RECORDER)
    page.clock.install()  # the page's timers, run forward below without waiting
    page.goto(url)
    agree(page)
    page.get_by_label("拍摄视频").set_input_files(make_fixture("safari_fmp4", media_dir))
    expect(live_region(page)).to_contain_text("不一致", timeout=VERDICT_TIMEOUT_MS)
    expect(live_region(page)).to_contain_text("返回")  # what to do next
    page.clock.fast_forward("01:00")  # a minute of reading
    page.wait_for_timeout(500)  # (a navigation the timers started would have begun)
    expect(live_region(page)).to_contain_text("不一致")
    assert page.url.startswith(live_app.url), page.url
    screenshot(page, "over-stays")
    page.get_by_role("link", name="返回").click()
    page.wait_for_url(re.compile(re.escape(f"{done}?ref=22&session_id=")))


def test_a_pass_counts_down_visibly_then_goes_back(live_app, phone, media_dir):
    done = live_app.operator_page("done")
    url, _number = live_app.new_session("silent", return_url=f"{done}?ref=23")
    page = phone(init_script=NO_RECORDER)
    page.goto(url)
    agree(page)
    page.get_by_label("拍摄视频").set_input_files(make_fixture("safari_fmp4", media_dir))
    expect(live_region(page)).to_contain_text("核验通过", timeout=VERDICT_TIMEOUT_MS)
    expect(live_region(page)).not_to_contain_text("核验通过。")  # its first line is a heading
    counting = page.get_by_text(re.compile(r"[1-5] 秒后自动返回"))
    expect(counting).to_be_visible()
    first = int(re.search(r"\d", counting.inner_text()).group(0))
    if first > 1:
        expect(page.get_by_text(f"{first - 1} 秒后自动返回")).to_be_visible()  # it counts
    expect(page.get_by_role("link", name="返回")).to_be_visible()  # to go at once
    screenshot(page, "passed-countdown")
    page.wait_for_url(re.compile(re.escape(f"{done}?ref=23&session_id=")))


# -- 3. sending and verifying keep what was asked on screen -------------------------------------
def test_sending_and_verifying_keep_the_challenge_and_the_last_frame(live_app, standin, phone):
    url, number = live_app.new_session("silent")
    standin.script[number] = standin.SLOW  # a few seconds of "verifying" to look at
    page = phone(init_script=TRACKS)
    page.goto(url)
    agree(page)
    record(page)
    expect(live_region(page)).to_contain_text("正在核验", timeout=20_000)
    expect(page.get_by_role("region", name=SILENT_TITLE)).to_be_visible()
    expect(page.get_by_label("摄像头画面（镜像）")).to_be_visible()  # the last frame, still
    screenshot(page, "verifying-with-challenge")
    expect(live_region(page)).to_contain_text("核验通过", timeout=VERDICT_TIMEOUT_MS)
    screenshot(page, "passed-with-still")
    states = page.evaluate("window.__tracks.map((t) => t.readyState)")
    assert states and set(states) == {"ended"}, states  # the camera and microphone are off


# -- 4. words: said once, and right ---------------------------------------------------------------
def test_english_names_one_attempt_and_two_attempts_properly(live_app, standin, phone, media_dir):
    url, number = live_app.new_session("silent")
    standin.script[number] = TOO_DARK
    page = phone(init_script=NO_RECORDER, locale="en-GB")
    page.goto(url + "?lang=en")
    page.get_by_role("button", name=re.compile("Agree")).click()
    page.get_by_label("Record a video").set_input_files(make_fixture("safari_fmp4", media_dir))
    expect(live_region(page)).to_contain_text("1 attempt left.", timeout=VERDICT_TIMEOUT_MS)
    expect(live_region(page)).not_to_contain_text("(s)")


def test_the_unknown_link_page_speaks_plain_english(live_app, phone):
    page = phone()
    page.goto(f"{live_app.url}/v/no-such-link-0123456789?lang=en")
    expect(page.get_by_role("heading", name="This link is not valid or no longer works")).to_be_visible()


def test_silent_mode_says_its_instruction_once(live_app, phone):
    url, _number = live_app.new_session("silent")
    page = phone()
    page.goto(url)
    agree(page)
    expect(start_button(page)).to_be_enabled()
    card = page.get_by_role("region", name=SILENT_TITLE)
    assert seen(card.get_by_text("看着摄像头")) == 1
    screenshot(page, "silent-once")


def test_a_hint_on_the_oval_is_not_shown_again_below_it(live_app, phone, browser_with):
    url, _number = live_app.new_session("silent")
    page = phone(browser=browser_with(feed="dark"))
    page.goto(url)
    agree(page)
    expect(page.locator("#hint")).to_contain_text("光线太暗")
    expect(live_region(page)).to_contain_text("光线太暗")   # read out once
    assert seen(page.get_by_text("光线太暗")) == 1      # and seen once
    screenshot(page, "hint-once")


def test_declining_offers_a_way_back_to_return_url(live_app, phone):
    done = live_app.operator_page("done")
    created, _number = live_app.create_session("silent", return_url=f"{done}?ref=24")
    page = phone()
    page.goto(created["url"])
    page.get_by_role("button", name="暂不核验").click()
    expect(page.get_by_role("heading", name="没有开始核验")).to_be_visible()
    back = page.get_by_role("link", name="返回")
    expect(back).to_have_attribute("href", re.compile(re.escape(f"{done}?ref=24&session_id={created['id']}")))
    screenshot(page, "declined-return")
    page.get_by_role("button", name="我想好了，回到上一步").click()
    expect(back).to_be_hidden()  # back on the consent screen: its own buttons


IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


def test_a_refused_camera_explains_the_persons_own_system_first(live_app, phone):
    url, _number = live_app.new_session("action")
    page = phone(camera=False, user_agent=IPHONE)
    page.goto(url)
    agree(page)
    expect(live_region(page)).to_contain_text("权限被拒绝")
    why = page.get_by_role("region", name="想在网页里直接录制？")
    expect(why.get_by_text("iPhone：")).to_be_visible()
    expect(why.get_by_text("安卓：")).to_be_hidden()
    screenshot(page, "refused-iphone")
    why.get_by_text("其他系统").click()  # the rest, for whoever needs them
    expect(why.get_by_text("安卓：")).to_be_visible()
    expect(why.get_by_text("微信：")).to_be_visible()


DESKTOP = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.0.0 Safari/537.36")


def test_a_computer_is_told_a_computers_way_not_every_phones(live_app, phone):
    url, _number = live_app.new_session("action")
    page = phone(camera=False, user_agent=DESKTOP, is_mobile=False, has_touch=False,
                 viewport={"width": 1024, "height": 768})
    page.goto(url)
    agree(page)
    expect(live_region(page)).to_contain_text("权限被拒绝")
    why = page.get_by_role("region", name="想在网页里直接录制？")
    expect(why.get_by_text("电脑：")).to_be_visible()
    for phone_way in ("iPhone：", "安卓：", "微信："):
        expect(why.get_by_text(phone_way)).to_be_hidden()
    why.get_by_text("其他系统").click()  # a phone's ways, for whoever opens the link on one
    expect(why.get_by_text("iPhone：")).to_be_visible()


def test_the_camera_app_screen_in_silent_mode_says_its_instruction_once(live_app, phone):
    """Silent mode has nothing to remember before the camera app covers the page: its title says
    what to do, and nothing repeats it."""
    url, _number = live_app.new_session("silent")
    page = phone(init_script=NO_RECORDER)
    page.goto(url)
    agree(page)
    expect(page.get_by_role("region", name=SILENT_TITLE)).to_be_visible()
    expect(page.locator("#fallback-hint")).not_to_be_empty()
    seen = page.locator("main").inner_text()
    assert seen.count("保持不动") == 1, seen
    assert "请先记住" not in seen, seen
