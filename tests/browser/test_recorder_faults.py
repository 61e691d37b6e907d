"""A page that adapts instead of repeating a failure, in Chromium, with each engine's fault
reproduced by wrapping the real MediaRecorder (test instrumentation; the recording itself is
Chromium's): Firefox's recorder that never fires `stop` for a type it cannot record, WebKitGTK
12's recorder whose chunks are empty, a file the server cannot read, a camera that never opens,
and an in-app browser without getUserMedia.

Nothing waits forever: each ends with words the person can act on, the next recording made
another way, or the phone's camera app offered, and no attempt spent on a recording that was
never sent.
"""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import VERDICT_TIMEOUT_MS, screenshot
from .test_capture_page import (
    agree,
    expect_passed,
    live_region,
    sent_to_juhe,
    shown_digits,
    start_button,
)

# Every recorder the page makes, with the type it asked for, in window.__types.
WRAP = """
window.__types = [];
const Real = window.MediaRecorder;
window.MediaRecorder = class extends Real {
  constructor(stream, options) {
    super(stream, options);
    this.__n = window.__types.push((options && options.mimeType) || '') - 1;
  }
  %s
};
"""
# Firefox asked for Opus on a stream without sound: no `stop` ever (the first recorder only).
NEVER_STOPS = WRAP % "stop() { if (this.__n > 0) super.stop(); }"
# WebKitGTK on Debian 12: every chunk empty.
EMPTY_CHUNKS = WRAP % """
  set ondataavailable(listener) {
    super.ondataavailable = (event) => listener({ data: new Blob([], { type: event.data.type }) });
  }
"""


def record_once(page) -> None:
    expect(start_button(page)).to_be_enabled(timeout=30_000)
    start_button(page).click()
    expect(live_region(page)).to_contain_text("正在录制", timeout=8_000)


def test_a_recorder_that_never_stops_is_given_up_and_the_next_type_passes(live_app, standin, phone):
    url, number = live_app.new_session("silent")
    page = phone(init_script=NEVER_STOPS)
    page.goto(url)
    agree(page)
    record_once(page)
    # 3 s countdown, 6 s recording, then the recorder gets 5 s to stop.
    expect(live_region(page)).to_contain_text("录像没能正常开始或结束", timeout=25_000)
    expect(live_region(page)).to_contain_text("不计入次数")
    expect(live_region(page)).to_contain_text("换一种录制方式")
    screenshot(page, "recorder-stuck")
    assert sent_to_juhe(standin, number) == []

    page.get_by_role("button", name="重新录制").click()
    record_once(page)
    expect_passed(page)
    first, second = page.evaluate("window.__types")
    assert first != second, "the same recorder type was used again"
    assert len(sent_to_juhe(standin, number)) == 1


def test_empty_recordings_twice_lead_to_the_phone_camera_saying_why(live_app, standin, phone, media):
    url, number = live_app.new_session("number")
    page = phone(init_script=EMPTY_CHUNKS)
    page.goto(url)
    agree(page)
    digits = shown_digits(page)
    record_once(page)
    expect(live_region(page)).to_contain_text("视频是坏的", timeout=20_000)
    expect(live_region(page)).to_contain_text("换一种录制方式")
    page.get_by_role("button", name="重新录制").click()
    record_once(page)
    # The second broken recording: not a third loop, the phone's camera app, and why.
    expect(live_region(page)).to_contain_text("录不出能用的视频", timeout=20_000)
    expect(page.get_by_role("button", name="再次打开摄像头")).to_be_hidden()
    expect(page.locator("#fallback-hint")).to_contain_text(" ".join(digits))
    screenshot(page, "recorder-broken-fallback")
    types = page.evaluate("window.__types")
    assert len(types) == 2 and types[0] != types[1], types
    assert sent_to_juhe(standin, number) == []

    page.get_by_label("拍摄视频").set_input_files(media("safari_fmp4"))
    expect_passed(page)
    assert [form["validateData"] for form in sent_to_juhe(standin, number)] == [digits]


def test_a_file_the_server_cannot_read_is_recorded_another_way_next_time(live_app, standin, phone):
    url, number = live_app.new_session("silent")
    standin.script[number] = 267537  # 视频格式有误: Juhe could not read the file
    page = phone(init_script=WRAP % "")
    page.goto(url)
    agree(page)
    record_once(page)
    expect(live_region(page)).to_contain_text("视频文件无法识别", timeout=VERDICT_TIMEOUT_MS)
    del standin.script[number]
    page.get_by_role("button", name="重新录制").click()
    record_once(page)
    expect_passed(page)
    first, second = page.evaluate("window.__types")
    assert first != second, "the recorder type Juhe could not read was used again"
    assert len(sent_to_juhe(standin, number)) == 2


def test_a_camera_that_never_opens_is_given_up_with_what_to_do(live_app, phone):
    url, _ = live_app.new_session("action")
    page = phone(init_script="navigator.mediaDevices.getUserMedia = () => new Promise(() => {});")
    page.goto(url)
    agree(page)
    expect(live_region(page)).to_contain_text("正在打开摄像头")
    expect(live_region(page)).to_contain_text("20 秒内没有打开", timeout=30_000)
    expect(page.get_by_role("region", name="想在网页里直接录制？")).to_contain_text("允许")
    expect(page.get_by_role("button", name="再次打开摄像头")).to_be_visible()
    expect(page.get_by_label("拍摄视频")).to_be_enabled()


def test_an_in_app_browser_without_the_camera_gets_the_phone_camera_at_once(live_app, phone):
    url, _ = live_app.new_session("number")
    wechat = ("Mozilla/5.0 (Linux; Android 13; V2171A) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Version/4.0 Chrome/86.0.4240.99 XWEB/4317 MMWEBSDK/20220903 Mobile Safari/537.36 "
              "MMWEBID/6170 MicroMessenger/8.0.28.2240(0x28001C35) WeChat/arm64 Weixin NetType/WIFI")
    page = phone(user_agent=wechat, init_script="delete MediaDevices.prototype.getUserMedia;")
    page.goto(url)
    agree(page)
    expect(live_region(page)).to_contain_text("内置的浏览器不能在网页里录像")
    why = page.get_by_role("region", name="想在网页里直接录制？")
    expect(why).to_contain_text("在浏览器打开")
    expect(why).to_contain_text("实时提示")
    expect(page.get_by_label("拍摄视频")).to_be_enabled()
    screenshot(page, "in-app-fallback")
