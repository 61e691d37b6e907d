"""The capture page in a phone-sized headless Chromium, end to end: the page records with the
fake camera, the app normalises the video and asks the loopback Juhe stand-in.

Assertions are about what a person sees and hears read out: the challenge's visible text,
the live region (role=status), buttons by their accessible names.
"""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from ..media import make_fixture
from .conftest import PERFORMER_SCRIPT, SCREENSHOTS, VERDICT_TIMEOUT_MS, screenshot

NUMBER_TITLE = "录制时请大声读出这 4 个数字"
ACTION_TITLE = "录制时请按顺序做这两个动作"
SILENT_TITLE = "录制时请看着摄像头，保持不动"
ACTION_CODES = {"张嘴": "1", "闭眼": "2"}
PAGE_BUDGET_BYTES = 60 * 1024

# Test instrumentation (not page code): sum the page's layout shifts.
LAYOUT_SHIFTS = """
window.__layoutShift = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__layoutShift += entry.value;
}).observe({ type: 'layout-shift', buffered: true });
"""


def live_region(page):
    return page.get_by_role("status")


def start_button(page):
    return page.get_by_role("button", name="开始录制")


def agree(page) -> None:
    """Agree on the consent screen (nothing is recorded, and the camera stays closed, before)."""
    page.get_by_role("button", name="同意").click()


def shown_digits(page) -> str:
    """The 4 digits the page shows (waits until they are there)."""
    region = page.get_by_role("region", name=NUMBER_TITLE)
    expect(region).to_contain_text(re.compile(r"\d{4}"))
    return re.search(r"\d{4}", region.inner_text()).group(0)


def record(page, name: str | None = None) -> None:
    """Press 开始录制 once the preview is live; the recording stops and uploads by itself."""
    expect(start_button(page)).to_be_enabled()
    start_button(page).click()
    expect(live_region(page)).to_contain_text("正在录制", timeout=8_000)
    if name:
        page.wait_for_timeout(2_500)  # the progress ring is part-way round
        screenshot(page, name)


def sent_to_juhe(standin, number: str) -> list[dict]:
    """The form fields of every request the stand-in received for this ID number."""
    return [r["form"] for r in list(standin.requests) if r["form"].get("idcard") == number]


def expect_passed(page) -> None:
    expect(live_region(page)).to_contain_text("通过", timeout=VERDICT_TIMEOUT_MS)
    expect(page.get_by_role("button", name=re.compile("重新"))).to_have_count(0)


# -- a pass in each mode ---------------------------------------------------------------------
def test_number_mode_passes_and_juhe_gets_the_digits_shown(live_app, standin, phone):
    url, number = live_app.new_session("number")
    page = phone(init_script=LAYOUT_SHIFTS)
    page.goto(url)
    agree(page)

    digits = shown_digits(page)
    expect(start_button(page)).to_be_enabled()
    expect(live_region(page)).to_contain_text("开始录制")
    screenshot(page, "before-number")
    assert page.evaluate("window.__layoutShift") < 0.01, "the page moved when the camera started"

    record(page, "recording-number")
    expect(page.get_by_role("region", name=NUMBER_TITLE)).to_contain_text(digits)  # shown throughout
    expect_passed(page)
    screenshot(page, "passed")

    sent = sent_to_juhe(standin, number)
    assert len(sent) == 1
    assert sent[0]["livenessType"] == "1"
    assert sent[0]["validateData"] == digits


def test_action_mode_passes_and_juhe_gets_the_order_shown(live_app, standin, phone):
    url, number = live_app.new_session("action")
    page = phone(init_script=PERFORMER_SCRIPT)  # a face that does as the prompts say
    page.goto(url)
    agree(page)

    steps = page.get_by_role("region", name=ACTION_TITLE).get_by_role("listitem")
    expect(steps).to_have_count(2)
    expect(steps.nth(1)).to_contain_text(re.compile("张嘴|闭眼"))
    order = [re.search("张嘴|闭眼", steps.nth(i).inner_text()).group(0) for i in range(2)]
    assert sorted(order) == ["张嘴", "闭眼"]
    expect(start_button(page)).to_be_enabled()
    screenshot(page, "before-action")

    start_button(page).click()
    # The actions are prompted one after the other, in the order shown.
    first_prompt = "张嘴，再合上" if order[0] == "张嘴" else "闭眼 1 秒，再睁开"
    second_prompt = "闭眼 1 秒，再睁开" if order[0] == "张嘴" else "张嘴，再合上"
    expect(live_region(page)).to_contain_text(first_prompt, timeout=8_000)
    screenshot(page, "recording-action")
    expect(live_region(page)).to_contain_text(second_prompt, timeout=5_000)
    expect_passed(page)

    sent = sent_to_juhe(standin, number)
    assert len(sent) == 1
    assert sent[0]["livenessType"] == "2"
    assert sent[0]["validateData"] == ",".join(ACTION_CODES[a] for a in order)


def test_silent_mode_passes_after_showing_verifying(live_app, standin, phone):
    url, number = live_app.new_session("silent")
    standin.script[number] = standin.SLOW  # a few seconds of "verifying" to look at
    page = phone()
    page.goto(url)
    agree(page)

    expect(page.get_by_role("region", name=SILENT_TITLE)).to_contain_text("看着摄像头")
    expect(start_button(page)).to_be_enabled()
    screenshot(page, "before-silent")
    record(page)
    expect(live_region(page)).to_contain_text("正在核验", timeout=20_000)
    screenshot(page, "verifying")
    expect_passed(page)

    sent = sent_to_juhe(standin, number)
    assert len(sent) == 1
    assert sent[0]["livenessType"] == "0"
    assert not sent[0].get("validateData")


# -- failures --------------------------------------------------------------------------------
def test_failure_shows_guidance_then_a_new_challenge_passes(live_app, standin, phone):
    url, number = live_app.new_session("number")
    standin.script[number] = 267517  # too dark
    page = phone()
    page.goto(url)
    agree(page)

    first = shown_digits(page)
    record(page)
    expect(live_region(page)).to_contain_text("光线太暗", timeout=VERDICT_TIMEOUT_MS)
    expect(live_region(page)).to_contain_text("还可以再试 1 次")
    retry = page.get_by_role("button", name="重新录制")
    expect(retry).to_be_visible()
    screenshot(page, "failed-with-guidance")

    del standin.script[number]
    retry.click()
    expect(page.get_by_role("region", name=NUMBER_TITLE)).not_to_contain_text(first)
    second = shown_digits(page)
    assert second != first
    record(page)
    expect_passed(page)

    assert [form["validateData"] for form in sent_to_juhe(standin, number)] == [first, second]


def test_when_attempts_run_out_it_says_so_and_offers_no_retry(live_app, standin, phone):
    url, number = live_app.new_session("silent")
    standin.script[number] = 267517
    page = phone()
    page.goto(url)
    agree(page)

    record(page)
    expect(live_region(page)).to_contain_text("还可以再试 1 次", timeout=VERDICT_TIMEOUT_MS)
    page.get_by_role("button", name="重新录制").click()
    record(page)
    expect(live_region(page)).to_contain_text("本次核验已结束", timeout=VERDICT_TIMEOUT_MS)
    expect(live_region(page)).to_contain_text("光线太暗")
    expect(page.get_by_role("button", name=re.compile("重新|开始"))).to_have_count(0)
    screenshot(page, "over")
    assert len(sent_to_juhe(standin, number)) == 2


# -- where the browser cannot record ---------------------------------------------------------
@pytest.mark.parametrize("kind", ["safari_fmp4", "chrome_webm"])
def test_without_media_recorder_the_file_input_uploads_by_itself(live_app, standin, phone,
                                                                media_dir, kind):
    url, number = live_app.new_session("number")
    page = phone(init_script="delete window.MediaRecorder;")
    page.goto(url)
    agree(page)

    digits = shown_digits(page)  # the same challenge, shown for the camera app
    expect(live_region(page)).to_contain_text("不能在网页里录像")
    file_input = page.get_by_label("拍摄视频")
    expect(file_input).to_have_attribute("accept", "video/*")
    expect(file_input).to_have_attribute("capture", "user")
    if kind == "safari_fmp4":
        screenshot(page, "fallback")
    file_input.set_input_files(make_fixture(kind, media_dir))
    expect_passed(page)

    sent = sent_to_juhe(standin, number)
    assert [(form["livenessType"], form["validateData"]) for form in sent] == [("1", digits)]


def test_refused_camera_is_explained_and_the_file_input_offered(live_app, standin, phone,
                                                              media_dir):
    url, number = live_app.new_session("action")
    page = phone(camera=False)  # no permission: Chromium refuses getUserMedia
    page.goto(url)
    agree(page)

    expect(live_region(page)).to_contain_text("权限被拒绝")
    explanation = page.get_by_role("region", name="想在网页里直接录制？")
    for platform in ("iPhone", "安卓", "微信"):
        expect(explanation).to_contain_text(platform)
    expect(page.get_by_role("button", name="再次打开摄像头")).to_be_visible()
    expect(page.get_by_role("region", name=ACTION_TITLE)).to_contain_text("张嘴")
    screenshot(page, "refused")

    page.get_by_label("拍摄视频").set_input_files(make_fixture("chrome_webm", media_dir))
    expect_passed(page)
    assert len(sent_to_juhe(standin, number)) == 1


def test_insecure_context_is_explained_and_the_file_input_offered(live_app, standin, phone,
                                                                media_dir):
    url, number = live_app.new_session("silent")
    page = phone()
    page.goto(url.replace("://localhost:", "://insecure.test:"))  # plain http, not localhost
    agree(page)

    expect(live_region(page)).to_contain_text("安全连接")
    expect(page.get_by_role("region", name="想在网页里直接录制？")).to_contain_text("https://")
    expect(page.get_by_role("button", name="再次打开摄像头")).to_have_count(0)
    page.get_by_label("拍摄视频").set_input_files(make_fixture("safari_fmp4", media_dir))
    expect_passed(page)
    assert len(sent_to_juhe(standin, number)) == 1


# -- a shaky connection ----------------------------------------------------------------------
NO_RECORDER = "delete window.MediaRecorder;"  # the file input: the same upload, without waiting


def test_a_dropped_upload_is_sent_again_without_recording_again(live_app, standin, phone,
                                                                media_dir):
    url, number = live_app.new_session("number")
    page = phone(init_script=NO_RECORDER)
    uploads = []

    def drop_the_first(route):
        uploads.append(route.request.url)
        if len(uploads) == 1:
            route.abort("connectionreset")  # never reaches the server
        else:
            route.continue_()

    page.route("**/upload", drop_the_first)
    page.goto(url)
    agree(page)
    digits = shown_digits(page)
    page.get_by_label("拍摄视频").set_input_files(make_fixture("safari_fmp4", media_dir))
    expect(live_region(page)).to_contain_text("网络连接中断")
    send_again = page.get_by_role("button", name="再次上传")
    screenshot(page, "upload-lost")
    send_again.click()
    expect_passed(page)
    assert len(uploads) == 2
    assert [form["validateData"] for form in sent_to_juhe(standin, number)] == [digits]


def test_an_answer_lost_while_verifying_is_read_back(live_app, standin, phone, media_dir):
    url, number = live_app.new_session("number")
    standin.script[number] = 267512  # too close
    live_app.lose_upload_answers(url)  # verified and recorded, but the answer never arrives
    page = phone(init_script=NO_RECORDER)
    page.goto(url)
    agree(page)
    page.get_by_label("拍摄视频").set_input_files(make_fixture("safari_fmp4", media_dir))
    expect(live_region(page)).to_contain_text("离得太近", timeout=VERDICT_TIMEOUT_MS)
    expect(live_region(page)).to_contain_text("还可以再试 1 次")
    expect(page.get_by_role("button", name="重新录制")).to_be_visible()
    assert len(sent_to_juhe(standin, number)) == 1


def test_a_page_reloaded_while_verifying_waits_for_the_verdict(live_app, standin, phone, media_dir):
    url, number = live_app.new_session("number")
    standin.script[number] = standin.SLOW
    # Long enough that the reloaded page surely finds the upload still being verified.
    slow_before, standin.slow_seconds = standin.slow_seconds, 12.0
    page = phone(init_script=NO_RECORDER)
    page.goto(url)
    agree(page)
    page.get_by_label("拍摄视频").set_input_files(make_fixture("safari_fmp4", media_dir))
    expect(live_region(page)).to_contain_text("正在核验")
    page.wait_for_timeout(200)  # let the page's upload get going
    deadline = time.monotonic() + 20
    while not sent_to_juhe(standin, number):  # the server is now waiting for Juhe's answer
        assert time.monotonic() < deadline, "the upload never reached Juhe"
        page.wait_for_timeout(100)
    try:
        page.reload()
        expect(live_region(page)).to_contain_text("正在核验")
        expect_passed(page)
    finally:
        standin.slow_seconds = slow_before
    assert len(sent_to_juhe(standin, number)) == 1


# -- fit -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, viewport, query", [
    ("narrow-320", {"width": 320, "height": 568}, ""),
    ("landscape", {"width": 740, "height": 360}, ""),
    ("english", {"width": 360, "height": 740}, "?lang=en"),
])
def test_the_page_fits_small_and_landscape_screens(live_app, phone, name, viewport, query):
    url, _ = live_app.new_session("number")
    page = phone()
    page.set_viewport_size(viewport)
    page.goto(url + query)
    agree(page)
    start = page.get_by_role("button", name="Start recording" if query else "开始录制")
    expect(start).to_be_enabled()
    screenshot(page, f"fit-{name}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    box = start.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44
    # The digits and the button are on screen together, without scrolling.
    digits = page.locator("#digits").bounding_box()
    assert digits["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], (digits, box)


# -- framed by an operator's site ------------------------------------------------------------
PARENT = """<!doctype html><title>operator</title>
<iframe src="{url}" allow="camera; microphone" width="360" height="700"></iframe>
<script>
window.received = [];
window.addEventListener('message', (event) => window.received.push({{origin: event.origin, data: event.data}}));
</script>"""


def test_framed_page_records_posts_its_result_to_the_parent_and_returns(live_app, standin, phone):
    operator = live_app.operator_origin  # http://127.0.0.1:<port>: another site than the page's
    done = live_app.operator_page("done")
    url, number = live_app.new_session("silent", embed_origin=operator, return_url=f"{done}?ref=7")
    page = phone()
    page.goto(live_app.operator_page("embed", PARENT.format(url=url)))
    frame = page.frame_locator("iframe")
    agree(frame)

    record(frame)
    expect(frame.get_by_role("status")).to_contain_text("通过", timeout=VERDICT_TIMEOUT_MS)
    page.wait_for_function("window.received.some((m) => m.data.type === 'liveness:result')")
    messages = page.evaluate("window.received")
    assert {m["origin"] for m in messages} == {live_app.url}
    assert any(m["data"]["type"] == "liveness:resize" for m in messages)  # the frame's height
    received = [m for m in messages if m["data"]["type"] == "liveness:result"]
    assert len(received) == 1
    assert received[0]["origin"] == live_app.url
    assert received[0]["data"]["type"] == "liveness:result"
    assert received[0]["data"]["status"] == "passed"
    session_id = received[0]["data"]["sessionId"]
    assert session_id.startswith("ses_")
    page.frames[1].wait_for_url(f"{done}?ref=7&session_id={session_id}")
    assert len(sent_to_juhe(standin, number)) == 1


# -- weight ----------------------------------------------------------------------------------
def test_page_before_the_camera_starts_stays_small(live_app, phone):
    url, _ = live_app.new_session("action")
    page = phone(camera=False)
    loaded: list[tuple[str, int]] = []
    page.on("requestfinished", lambda request: loaded.append(
        (request.url, request.sizes()["responseBodySize"] + request.sizes()["responseHeadersSize"]))
        if request.resource_type in ("document", "stylesheet", "script", "image") else None)
    page.goto(url)
    agree(page)
    expect(live_region(page)).to_contain_text("权限被拒绝")  # everything the page needs is loaded
    page.wait_for_load_state("networkidle")

    total = sum(size for _, size in loaded)
    report = "\n".join(f"{size:>7,d}  {u.split('?')[0].rsplit('/', 1)[-1] or u}" for u, size in loaded)
    (SCREENSHOTS / "page-weight.txt").write_text(
        f"{report}\n{total:>7,d}  total (uncompressed, headers included)\n")
    print(f"\npage weight before the camera starts: {total} bytes\n{report}")
    assert total <= PAGE_BUDGET_BYTES, report


def test_every_phase_of_the_script_has_a_screen_and_every_screen_a_phase(live_app, phone):
    """capture.js's PHASES (the module the page runs, imported again: the same instance) against
    the page's data-show lists: a phase nothing shows would leave the person a blank screen."""
    url, _ = live_app.new_session("number")
    page = phone(camera=False)
    page.goto(url)
    expect(page.get_by_role("button", name="同意")).to_be_visible()
    phases, shown = page.evaluate("""async () => {
      const script = document.querySelector('script[type="module"][src*="capture.js"]');
      const { PHASES } = await import(script.src);
      const shown = [...document.querySelectorAll('[data-show]')].flatMap((e) => e.dataset.show.split(' '));
      return [PHASES, [...new Set(shown)]];
    }""")
    assert len(phases) == len(set(phases)) >= 10
    assert set(shown) == set(phases), (sorted(set(shown) - set(phases)), sorted(set(phases) - set(shown)))
