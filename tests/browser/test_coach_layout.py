"""What the coaching says, and where, on the smallest phones: the face stays visible under the
words (the short words above it, the rest below it), the preview is never a sliver, a face
far from the camera is told to come closer, 「仍然开始」 stays a secondary way out while the coaching
goes on, and a page framed by embed.js shows the challenge and the start button together."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import screenshot
from .test_capture_page import agree, live_region

SMALL = {"width": 320, "height": 568}
START = {"zh": "开始录制", "en": "Start recording"}
TITLES = {
    ("number", "zh"): "录制时请大声读出这 4 个数字", ("number", "en"): "Read these 4 digits aloud while recording",
    ("action", "zh"): "录制时请按顺序做这两个动作",
    ("action", "en"): "Do these two actions, in this order, while recording",
    ("silent", "zh"): "录制时请看着摄像头，保持不动", ("silent", "en"): "Look at the camera and hold still while recording",
}


def face_region(page) -> dict:
    """Where the face is on the preview: the oval's box less its top and bottom sixths (the hair
    and the chin), in page pixels."""
    oval = page.locator("#stage .oval").bounding_box()
    return {**oval, "y": oval["y"] + oval["height"] / 6, "height": oval["height"] * 2 / 3}


def overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def on_screen(box: dict, viewport: dict) -> bool:
    return (box["y"] >= 0 and box["x"] >= 0 and box["y"] + box["height"] <= viewport["height"] + 0.5
            and box["x"] + box["width"] <= viewport["width"] + 0.5)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_hint_leaves_the_face_visible_on_a_small_phone(live_app, phone, browser_with, lang):
    url, _ = live_app.new_session("action")
    page = phone(browser=browser_with("far"), viewport=SMALL)
    page.goto(url + ("?lang=en" if lang == "en" else ""))
    agree(page)
    far = {"en": "Too far", "zh": "离得太远"}[lang]
    expect(page.locator("#hint")).to_contain_text(far)
    expect(live_region(page)).to_contain_text(far)
    screenshot(page, f"coach-small-hint-{lang}")
    stage = page.locator("#stage").bounding_box()
    assert stage["width"] >= 195, f"the preview is {stage['width']:.0f} px wide"
    # The words are all there, around the face: the short ones above it, the rest below it.
    words = {"en": ["Too far", "Move closer"], "zh": ["离得太远", "请靠近一点"]}[lang]
    for part in words:
        box = page.locator("#hint").get_by_text(part, exact=True).bounding_box()
        assert box and on_screen(box, SMALL), (part, box)
        assert not overlap(box, face_region(page)), (part, box, face_region(page))
    assert page.locator("#hint").get_by_text(words[0], exact=True).bounding_box()["y"] < face_region(page)["y"]
    start = page.get_by_role("button", name="仍然开始" if lang == "zh" else "Start anyway")
    challenge = page.get_by_role("region", name=TITLES["action", lang])
    for name, box in {"preview": stage, "challenge": challenge.bounding_box()}.items():
        assert on_screen(box, SMALL), f"the {name} {box} is not all on screen"
    expect(start).to_be_enabled(timeout=8_000)
    assert on_screen(start.bounding_box(), SMALL), start.bounding_box()


@pytest.mark.parametrize("mode", ["action", "number"])
def test_the_prompt_while_recording_leaves_the_face_visible(live_app, phone, mode):
    url, _ = live_app.new_session(mode)
    page = phone(viewport=SMALL)
    page.goto(url + "?lang=en")
    agree(page)
    start = page.get_by_role("button", name="Start recording")
    expect(start).to_be_enabled()
    start.click()
    prompt = page.locator("#prompt")
    if mode == "action":
        expect(prompt).to_have_text("Close your eyes for a second, then open them", timeout=15_000)  # the longest
    else:
        expect(prompt).to_have_text(re.compile(r"^\d{4}$"), timeout=15_000)
    screenshot(page, f"coach-small-prompt-{mode}")
    box = prompt.bounding_box()
    assert not overlap(box, face_region(page)), (box, face_region(page))
    lines = prompt.evaluate("(e) => Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight))")
    assert 1 <= lines <= 2, f"the prompt takes {lines} lines"
    assert prompt.evaluate("(e) => e.scrollHeight <= e.clientHeight + 1"), "the prompt is cut short"
    assert page.locator("#stage").bounding_box()["width"] >= 195


def test_a_face_far_from_the_camera_is_told_to_come_closer(live_app, phone, browser_with):
    url, _ = live_app.new_session("silent")
    page = phone(browser=browser_with("tiny"))
    page.goto(url)
    agree(page)
    expect(live_region(page)).to_contain_text("离得太远：请靠近一点")
    expect(page.locator("#hint")).to_contain_text("离得太远")
    assert page.get_attribute("#stage", "data-check") == "bad"
    screenshot(page, "coach-tiny")


def test_start_anyway_stays_secondary_and_the_coaching_goes_on(live_app, phone, browser_with):
    url, _ = live_app.new_session("silent")
    page = phone(browser=browser_with("wall"))
    page.goto(url)
    agree(page)
    anyway = page.get_by_role("button", name="仍然开始")
    expect(anyway).to_be_enabled(timeout=10_000)
    screenshot(page, "coach-start-anyway")
    # Not the filled blue button of 开始录制: a light button with a coloured outline.
    look = anyway.evaluate("""(e) => { const s = getComputedStyle(e);
        const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
        const [r, g, b] = rgb(s.backgroundColor);
        return { light: (0.299 * r + 0.587 * g + 0.114 * b) / 255, border: parseFloat(s.borderTopWidth) }; }""")
    assert look["light"] > 0.8 and look["border"] >= 1, look
    # And the coaching goes on: the problem is still named, on the preview and under it.
    expect(page.locator("#hint")).to_contain_text("没有看到脸")
    expect(live_region(page)).to_contain_text("没有看到脸")
    expect(page.locator("#stage")).to_have_attribute("data-check", "bad")


OPERATOR_PAGE = """<!doctype html><title>A bank</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<p>Your bank</p>
<div id="box"></div>
<script src="{app}/static/embed.js"></script>
<script>LivenessEmbed.open(document.getElementById('box'), "{url}");</script>"""


@pytest.mark.parametrize("viewport", [SMALL, {"width": 390, "height": 844}], ids=["320x568", "390x844"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_framed_the_challenge_and_the_start_button_are_on_screen_together(live_app, phone, viewport, lang):
    operator = live_app.operator_origin
    url, _ = live_app.new_session("number", embed_origin=operator)
    page = phone(viewport=viewport)
    page.goto(live_app.operator_page("bank-fit", OPERATOR_PAGE.format(
        app=live_app.url, url=url + ("?lang=en" if lang == "en" else ""))))
    frame = page.frame_locator("#box iframe")
    agree(frame)
    start = frame.get_by_role("button", name=START[lang])
    expect(start).to_be_enabled()
    page.wait_for_timeout(300)  # the frame's height follows the page's (a message or two)
    # The person scrolls the operator's page to the frame.
    page.locator("#box iframe").evaluate("(e) => e.scrollIntoView()")
    screenshot(page, f"embed-fit-{lang}-{viewport['width']}x{viewport['height']}")
    challenge = frame.get_by_role("region", name=TITLES["number", lang]).bounding_box()
    button = start.bounding_box()
    assert on_screen(challenge, viewport) and on_screen(button, viewport), (challenge, button)
    assert frame.locator("#stage").bounding_box()["height"] >= 150


# -- a sandbox server's page (its banner on top) at 320x568 --------------------------------------
SAME_LINE = """(element, word) => {
    const text = element.textContent;
    const at = text.indexOf(word);
    const range = document.createRange();
    const node = element.firstChild;
    const tops = [...word].map((_, i) => {
        range.setStart(node, at + i); range.setEnd(node, at + i + 1);
        return Math.round(range.getBoundingClientRect().top);
    });
    return new Set(tops).size === 1;
}"""


@pytest.fixture(scope="module")
def sandbox_pages(tmp_path_factory):
    """The capture page of a number-mode session on a sandbox server (no Juhe key), in Chinese and
    English, as HTML: served in place of a page of the live app, whose static files it uses."""
    from urllib.parse import urlsplit

    from webapp import create_app

    from ..conftest import idcard

    tmp = tmp_path_factory.mktemp("sandbox")
    client = create_app({"DATABASE_URL": f"sqlite:///{tmp / 'sb.sqlite3'}", "BACKGROUND_TASKS": False,
                         "RATELIMIT_ENABLED": False}).test_client()
    created = client.post("/api/v1/sessions", headers={"Authorization": "Bearer sandbox-operator-key"},
                          json={"realname": "张三", "idcard": idcard(1), "mode": "number"}).get_json()
    path = urlsplit(created["url"]).path
    return {lang: client.get(path + ("?lang=en" if lang == "en" else "")).get_data(as_text=True)
            for lang in ("zh", "en")}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_on_a_sandbox_server_the_banner_and_the_consent_button_fit_320x568(live_app, phone, sandbox_pages, lang):
    page = phone(viewport=SMALL, camera=False)
    url = f"{live_app.url}/sandbox-page"
    page.route(url, lambda route: route.fulfill(body=sandbox_pages[lang], content_type="text/html; charset=utf-8"))
    page.goto(url)
    banner = page.get_by_role("note")
    expect(banner).to_contain_text("沙箱" if lang == "zh" else "Sandbox")
    agree_button = page.get_by_role("button", name="同意")
    expect(agree_button).to_be_enabled()
    screenshot(page, f"sandbox-consent-{lang}")
    if lang == "zh":  # no word is cut in two at the end of a line
        for word in ("聚合数据", "模拟"):
            assert banner.evaluate(SAME_LINE, word), f"the banner breaks {word} across lines"
    else:  # one line, so the preview keeps its room; the Chinese name in the English text whole
        lines = banner.evaluate("""(e) => { const r = document.createRange(); r.selectNodeContents(e);
            return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size; }""")
        assert lines <= 1, f"the banner takes {lines} lines"
        juhe = page.locator("dd", has_text="聚合数据")
        assert juhe.evaluate(SAME_LINE, "(聚合数据)"), "the consent breaks 聚合数据 across lines"
    assert page.evaluate("window.scrollY") == 0
    assert on_screen(agree_button.bounding_box(), SMALL), agree_button.bounding_box()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
