"""The page checks the challenge itself while recording (webapp/static/performance.js), before
anything is sent. The fake camera is a person (engines/camera.js): the astronaut's face warped so
the mouth opens and the eyes close (tests/browser/faces.py), doing as the prompts say or not
(`?perform=` on the page's URL picks the performance). Every good performance must pass without a
prompt; every negative must be caught before upload, in the person's words, with 重新录制 (nothing
sent, nothing counted) and 仍然发送. After the run screenshots/performance.md has the table of
what the page said of each.

Chromium here; the same camera in Firefox and WebKit runs in test_engines.py.
"""
from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from .conftest import PERFORMER_SCRIPT, SCREENSHOTS, screenshot
from .test_capture_page import agree, expect_passed, live_region, sent_to_juhe, start_button

# (mode, challenge order or None, performance) → what the page must say: None (sent, passed), or
# the missed check it names, with words the person reads.
CASES = [
    ("action", "1,2", "follow", None),
    ("action", "2,1", "follow", None),
    ("number", None, "follow", None),
    ("silent", None, "follow", None),
    ("action", "1,2", "still", ("mouth", "没有看到张嘴")),
    ("action", "2,1", "mouth-only", ("eyes", "没有看到闭眼")),
    ("action", "1,2", "eyes-only", ("mouth", "没有看到张嘴")),
    ("action", "1,2", "swapped", ("order", "顺序反了")),
    ("action", "2,1", "swapped", ("order", "顺序反了")),
    ("number", None, "lips-still", ("lips", "没有看到嘴在动")),
    ("action", "2,1", "leave", ("face", "没有一直看到你的脸")),
    ("silent", None, "leave", ("face", "没有一直看到你的脸")),
    ("number", None, "cover", ("light", "画面变黑了")),
    ("number", None, "unpainted", None),
    ("action", "1,2", "unpainted", None),
]


@pytest.fixture(scope="module")
def verdicts():
    """What the page said of each performance, written to screenshots/performance.md."""
    rows: list[str] = []
    yield rows
    if rows:
        SCREENSHOTS.mkdir(exist_ok=True)
        head = ["| mode | order | performance | expected | the page said | sent to Juhe | page_checks (operator API) |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        (SCREENSHOTS / "performance.md").write_text("\n".join(head + rows) + "\n")


def session_with(live_app, mode: str, order: str | None) -> tuple[dict, str]:
    """A new session whose open challenge asks for the actions in `order` ("1,2": mouth first).
    The page's own /challenge draws one at random and a new one replaces the last: draw until."""
    created, number = live_app.create_session(mode)
    if order is not None:
        path = created["url"].split(str(live_app.port), 1)[1]
        for _ in range(40):
            drawn = requests.post(f"{live_app.url}{path}/challenge", timeout=10).json()["challenge"]
            if ",".join(str(a["code"]) for a in drawn["actions"]) == order:
                break
        else:
            raise AssertionError(f"no challenge in the order {order} in 40 draws")
    return created, number


def open_page(phone, url: str, perform: str):
    page = phone(init_script=PERFORMER_SCRIPT)
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/upload") else None)
    page.goto(f"{url}?perform={perform}")
    agree(page)
    return page, uploads


def record(page) -> None:
    expect(start_button(page)).to_be_enabled(timeout=20_000)
    start_button(page).click()
    expect(live_region(page)).to_contain_text("正在录制", timeout=8_000)


@pytest.mark.parametrize(("mode", "order", "perform", "missed"), CASES,
                         ids=[f"{m}-{o or 'any'}-{p}" for m, o, p, _ in CASES])
def test_the_page_catches_what_was_not_done_and_passes_what_was(live_app, standin, phone, verdicts,
                                                               mode, order, perform, missed):
    created, number = session_with(live_app, mode, order)
    page, uploads = open_page(phone, created["url"], perform)
    record(page)
    said = ""
    if missed is None:
        expect_passed(page)
        [attempt] = live_app.session(created["id"])["attempts"]
        checks = attempt["page_checks"]
        assert checks and checks["verdict"] == "passed" and not checks["sent_anyway"], checks
        assert "missed" not in checks["checks"].values(), checks
        said = "passed, no prompt"
    else:
        _key, words = missed
        redo = page.get_by_role("button", name="重新录制")
        expect(redo).to_be_visible(timeout=30_000)
        said = live_region(page).inner_text()
        assert words in said, said
        expect(page.get_by_role("button", name="仍然发送")).to_be_visible()
        screenshot(page, f"missed-{mode}-{perform}")
        assert uploads == [] and sent_to_juhe(standin, number) == []
        checks = None
    verdicts.append(f"| {mode} | {order or '–'} | {perform} | {'pass' if missed is None else 'caught: ' + missed[0]} "
                    f"| {said.splitlines()[0] if said else ''} | {len(sent_to_juhe(standin, number))} "
                    f"| {checks['checks'] if checks else '(nothing sent)'} |")


def test_record_again_costs_nothing_and_send_anyway_sends_with_what_the_page_saw(live_app, standin, phone):
    """A miss offers 重新录制 (the same challenge, the camera still open, no attempt used) and a
    secondary 仍然发送: a check can be wrong, so it never blocks anyone. What was sent anyway
    carries the page's verdict for the operator."""
    created, number = session_with(live_app, "action", "1,2")
    page, uploads = open_page(phone, created["url"], "still")
    record(page)
    expect(page.get_by_role("button", name="重新录制")).to_be_visible(timeout=30_000)
    send_anyway = page.get_by_role("button", name="仍然发送")
    assert "primary" in page.get_attribute("#redo", "class") and "secondary" in send_anyway.get_attribute("class")
    page.get_by_role("button", name="重新录制").click()
    record(page)  # the same challenge: the steps did not change, nothing was sent
    expect(page.get_by_role("button", name="仍然发送")).to_be_visible(timeout=30_000)
    assert uploads == [] and live_app.session(created["id"])["attempts"] == []
    send_anyway.click()
    expect_passed(page)  # the stand-in passes whatever comes; Juhe would judge it
    [attempt] = live_app.session(created["id"])["attempts"]
    assert attempt["page_checks"]["verdict"] == "missed" and attempt["page_checks"]["sent_anyway"] is True
    assert attempt["page_checks"]["checks"]["mouth"] == "missed"
    assert len(uploads) == 1 and len(sent_to_juhe(standin, number)) == 1


def test_on_a_small_phone_in_english_both_ways_on_are_on_screen(live_app, phone):
    """320x568 in English, the longest words: what was missed, 重新录制 and 仍然发送 without
    scrolling (the preview gives way while nothing is being filmed)."""
    created, _number = session_with(live_app, "action", "1,2")
    page = phone(init_script=PERFORMER_SCRIPT, viewport={"width": 320, "height": 568}, locale="en-GB")
    page.goto(f"{created['url']}?lang=en&perform=still")
    page.get_by_role("button", name="Agree").click()
    start = page.get_by_role("button", name="Start recording")
    expect(start).to_be_enabled(timeout=20_000)
    start.click()
    again = page.get_by_role("button", name="Record again")
    expect(again).to_be_visible(timeout=30_000)
    expect(live_region(page)).to_contain_text("No open mouth seen")
    screenshot(page, "missed-320x568-en")
    for button in (again, page.get_by_role("button", name="Send it anyway")):
        box = button.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 568, box
    assert page.evaluate("window.scrollY") == 0
