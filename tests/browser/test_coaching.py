"""Live coaching before an attempt is spent: fake cameras film a good face, a dark room, an
empty wall, a face far away and a face against a bright window; the page names the problem
before recording, lets a good face start within ~2 s, and never blocks anyone ("仍然开始").
In number mode a silent microphone is named, and a recording without sound is recorded again
locally, never sent."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from .conftest import SCREENSHOTS, screenshot
from .test_capture_page import agree, live_region, record, start_button

# Test instrumentation: when the preview went live (the page's phase became "ready") and when
# the start button was first enabled, in ms of performance.now().
WATCH_START = """
window.__ready = null; window.__enabled = null;
new MutationObserver(() => {
  const root = document.getElementById('capture');
  const start = document.getElementById('start');
  if (root && root.dataset.phase === 'ready' && window.__ready === null) window.__ready = performance.now();
  if (start && !start.disabled && window.__enabled === null) window.__enabled = performance.now();
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-phase', 'disabled'] });
"""


def oval_state(page) -> str | None:
    return page.get_attribute("#stage", "data-check")


def test_a_good_face_can_start_within_two_seconds_of_the_preview(live_app, phone):
    url, _ = live_app.new_session("silent")
    page = phone(init_script=WATCH_START)
    page.goto(url)
    agree(page)
    expect(start_button(page)).to_be_enabled()
    expect(live_region(page)).to_contain_text("很好")
    assert oval_state(page) == "good"
    waited = page.evaluate("window.__enabled - window.__ready")
    print(f"\nstart enabled {waited:.0f} ms after the preview went live")
    # ~1.6-1.8 s on an idle machine (detector load + 0.8 s of good looks); room for a busy CI.
    assert waited <= 3_000, f"the good face waited {waited:.0f} ms"
    screenshot(page, "coach-good")


@pytest.mark.parametrize("feed, words, mode", [
    ("dark", "光线太暗", "number"),
    ("wall", "没有看到脸", "action"),
    ("far", "离得太远", "silent"),
    ("backlit", "背后太亮", "number"),
])
def test_the_problem_is_named_before_recording_then_start_anyway(live_app, phone, browser_with,
                                                                  feed, words, mode):
    url, _ = live_app.new_session(mode)
    page = phone(browser=browser_with(feed))
    page.goto(url)
    agree(page)
    expect(live_region(page)).to_contain_text(words)
    expect(page.locator("#hint")).to_contain_text(words)    # on the oval too
    assert oval_state(page) == "bad"
    expect(start_button(page)).to_be_disabled()
    screenshot(page, f"coach-{feed}")

    anyway = page.get_by_role("button", name="仍然开始")
    expect(anyway).to_be_enabled(timeout=8_000)         # a detector's miss never blocks anyone
    expect(live_region(page)).to_contain_text("仍然开始")
    anyway.click()
    expect(live_region(page)).to_contain_text("秒后开始录制")


def test_without_the_detector_the_light_still_decides(live_app, phone):
    url, _ = live_app.new_session("number")
    page = phone()
    page.route("**/vendor/face-api/**", lambda route: route.abort())
    page.goto(url)
    agree(page)
    expect(start_button(page)).to_be_enabled(timeout=10_000)
    expect(live_region(page)).to_contain_text("开始录制")


def test_without_the_checks_the_page_works_as_before(live_app, standin, phone):
    url, _ = live_app.new_session("silent")
    page = phone()
    page.route("**/coach.js*", lambda route: route.abort())
    page.goto(url)
    agree(page)
    expect(start_button(page)).to_be_enabled()
    expect(live_region(page)).to_contain_text("把脸放进椭圆框")
    start_button(page).click()
    expect(live_region(page)).to_contain_text("通过", timeout=60_000)


def test_a_silent_microphone_is_named_and_its_recording_never_sent(live_app, phone, browser_with):
    url, _ = live_app.new_session("number")
    page = phone(browser=browser_with("face", sound=False))
    uploads = []
    page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/upload") else None)
    page.goto(url)
    agree(page)
    expect(live_region(page)).to_contain_text("麦克风没有声音", timeout=10_000)
    screenshot(page, "coach-mute")
    anyway = page.get_by_role("button", name="仍然开始")
    expect(anyway).to_be_enabled(timeout=8_000)
    anyway.click()
    expect(page.locator("#hint")).to_contain_text("听不到声音", timeout=12_000)   # while reading
    expect(live_region(page)).to_contain_text("没有录到声音", timeout=15_000)
    expect(live_region(page)).to_contain_text("没有上传")
    screenshot(page, "coach-not-sent")
    assert uploads == []
    page.get_by_role("button", name="重新录制").click()   # the same challenge, the camera still on
    expect(page.get_by_role("button", name="仍然开始")).to_be_enabled()
    assert uploads == []


def test_detector_and_landmarks_size_and_speed_with_4x_cpu_throttling(live_app, phone):
    """Measure (and keep in screenshots/detector.txt) the bytes, load times and time per frame of
    the detector and the landmark model in headless Chromium slowed 4x, as a mid-range phone is,
    and how many looks a second the page's own check took while recording (what the operator API
    reports in `page_checks.fps`). A measurement: only that both load and run is asserted."""
    created, _ = live_app.create_session("silent")
    page = phone()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
    sizes: dict[str, int] = {}
    page.on("requestfinished", lambda r: sizes.__setitem__(r.url.split("/")[-1].split("?")[0],
                                                          r.sizes()["responseBodySize"])
            if "/vendor/face-api/" in r.url or r.url.split("?")[0].endswith(("coach.js", "performance.js")) else None)
    page.goto(created["url"])
    agree(page)
    expect(start_button(page)).to_be_enabled(timeout=20_000)
    page.wait_for_function("""() => performance.getEntriesByName('liveness:landmarks-load').length""",
                           timeout=30_000)
    page.wait_for_timeout(2_000)
    measures = page.evaluate("""() => performance.getEntriesByType('measure')
        .filter((e) => e.name.startsWith('liveness:')).map((e) => [e.name, e.duration])""")
    record(page)
    expect(live_region(page)).to_contain_text("通过", timeout=60_000)
    [attempt] = live_app.session(created["id"])["attempts"]
    load = [d for name, d in measures if name == "liveness:detector-load"]
    landmarks = [d for name, d in measures if name == "liveness:landmarks-load"]
    frames = sorted(d for name, d in measures if name == "liveness:face-detect")
    assert load and landmarks and len(frames) >= 5, measures
    median = frames[len(frames) // 2]
    report = {"cpu_throttling": 4, "bytes": sizes, "bytes_total": sum(sizes.values()),
              "detector_load_ms": round(load[0]), "landmarks_load_ms": round(landmarks[0]),
              "frames_measured": len(frames), "frame_ms_median": round(median), "frame_ms_max": round(frames[-1]),
              "frame_rate_possible": round(1000 / median, 1),
              "recording_looks": attempt["page_checks"]["looks"], "recording_looks_per_s": attempt["page_checks"]["fps"]}
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / "detector.txt").write_text(json.dumps(report, indent=2) + "\n")
    print("\ndetector:", json.dumps(report))
    # The figures are reported, not asserted (a busy machine is slower); what must hold is that
    # both models came from our own static files and that the check ran on the throttled page.
    assert sizes.get("face_landmark_68_tiny_model.bin") and all(n > 0 for n in sizes.values()), sizes
    assert attempt["page_checks"]["checks"]["face"] == "passed", attempt["page_checks"]


# Test instrumentation: the moment the page first asks for the camera.
MARK_CAMERA_CALL = """
window.__cameraAskedAt = null;
const ask = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (c) => { window.__cameraAskedAt ??= performance.now(); return ask(c); };
"""


def test_the_detector_adds_nothing_before_the_camera_starts(live_app, phone):
    """Bytes the page loaded before it asked for the camera (action mode, the heaviest), and
    that the checks and the detector come only after (kept in screenshots/page-weight-live.txt)."""
    url, _ = live_app.new_session("action")
    page = phone(init_script=MARK_CAMERA_CALL)
    page.goto(url)
    agree(page)
    expect(start_button(page)).to_be_enabled()
    entries = page.evaluate("""() => performance.getEntriesByType('resource').concat(
        performance.getEntriesByType('navigation')).map((e) => [e.name, e.startTime, e.transferSize, e.encodedBodySize])""")
    asked = page.evaluate("window.__cameraAskedAt")
    assert asked is not None
    before = [(name, size) for name, start, size, _ in entries if start < asked]
    after = [(name, size) for name, start, size, _ in entries if start >= asked]
    assert not [n for n, _ in before if "coach.js" in n or "/vendor/" in n], before
    assert [n for n, _ in after if "coach.js" in n] and [n for n, _ in after if "face-api.esm.js" in n], after
    total = sum(size for _, size in before)
    lines = [f"{size:>9,d}  {name.split('?')[0].rsplit('/', 1)[-1]}" for name, size in before]
    lines += [f"{total:>9,d}  before the camera was asked for (transfer sizes, headers included)", ""]
    lines += [f"{size:>9,d}  {name.split('?')[0].rsplit('/', 1)[-1]}  (after)" for name, size in after]
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / "page-weight-live.txt").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
