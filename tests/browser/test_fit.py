"""The page fits every phone: on the usual portrait sizes, in Chinese and English, in every mode,
the challenge, the preview and the start button are on screen together without scrolling, and
the English action steps read on one line each."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import screenshot
from .test_capture_page import agree

VIEWPORTS = [(320, 568), (360, 640), (375, 667), (390, 844), (430, 932)]
TITLES = {
    ("number", "zh"): "录制时请大声读出这 4 个数字", ("number", "en"): "Read these 4 digits aloud while recording",
    ("action", "zh"): "录制时请按顺序做这两个动作",
    ("action", "en"): "Do these two actions, in this order, while recording",
    ("silent", "zh"): "录制时请看着摄像头，保持不动", ("silent", "en"): "Look at the camera and hold still while recording",
}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("mode", ["number", "action", "silent"])
def test_challenge_preview_and_start_button_fit_every_phone(live_app, phone, mode, lang):
    url, _ = live_app.new_session(mode)
    width, height = VIEWPORTS[0]
    page = phone(viewport={"width": width, "height": height})
    page.goto(url + ("?lang=en" if lang == "en" else ""))
    agree(page)
    start = page.get_by_role("button", name="Start recording" if lang == "en" else "开始录制")
    expect(start).to_be_enabled()
    challenge = page.get_by_role("region", name=TITLES[mode, lang])
    if mode == "action":
        expect(challenge.get_by_role("listitem").nth(1)).to_contain_text(re.compile("张嘴|闭眼"))
    problems = []
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)  # the resize handler measures the header again
        screenshot(page, f"fit-{mode}-{lang}-{width}x{height}")
        boxes = {"challenge": challenge.bounding_box(), "preview": page.locator("#stage").bounding_box(),
                 "start": start.bounding_box()}
        for name, box in boxes.items():
            if box["y"] < 0 or box["y"] + box["height"] > height + 0.5 or box["x"] < 0 or box["x"] + box["width"] > width + 0.5:
                problems.append(f"{width}x{height}: {name} {box} is not all on screen")
        if boxes["preview"]["height"] < 150:
            problems.append(f"{width}x{height}: the preview is only {boxes['preview']['height']:.0f} px high")
        if page.evaluate("window.scrollY") != 0 or page.evaluate("document.documentElement.scrollWidth > innerWidth"):
            problems.append(f"{width}x{height}: scrolled or wider than the screen")
        if boxes["start"]["height"] < 44:
            problems.append(f"{width}x{height}: the start button is under 44 px")
        if mode == "action":
            lines = page.evaluate("""() => [...document.querySelectorAll('#steps .step-name')].map((e) =>
                Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)))""")
            if lines != [1, 1]:
                problems.append(f"{width}x{height}: the action steps take {lines} lines")
    assert not problems, "\n".join(problems)
