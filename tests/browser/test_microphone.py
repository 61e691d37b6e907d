"""A microphone that is refused or hears nothing in number mode: where the session allows it, the
page offers action mode (opening the mouth and closing the eyes need no sound) and the operator
sees the change; where it does not, the page says how to allow the microphone on each phone.

Chromium refuses the microphone itself (the context is granted the camera only); the silent one
is Chromium's fake microphone playing digital silence."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import PERFORMER_SCRIPT, screenshot
from .test_capture_page import (
    ACTION_TITLE,
    agree,
    expect_passed,
    live_region,
    sent_to_juhe,
    shown_digits,
    start_button,
)


def camera_only(phone, live_app):
    page = phone(camera=False, init_script=PERFORMER_SCRIPT)  # a face that does the actions
    page.context.grant_permissions(["camera"], origin=live_app.url)
    return page


def switch_and_pass(page, live_app, standin, session_id: str, number: str, reason: str) -> None:
    page.get_by_role("button", name="改为做动作").click()
    # The page comes back as an action-mode page, without asking for consent again.
    steps = page.get_by_role("region", name=ACTION_TITLE).get_by_role("listitem")
    expect(steps.nth(1)).to_contain_text("闭眼" if "张嘴" in steps.nth(0).inner_text() else "张嘴")
    expect(page.get_by_role("button", name="同意并开始")).to_be_hidden()
    expect(start_button(page)).to_be_enabled(timeout=30_000)
    start_button(page).click()
    expect_passed(page)
    assert [form["livenessType"] for form in sent_to_juhe(standin, number)] == ["2"]
    seen = live_app.session(session_id)
    assert seen["mode"] == "action"
    assert seen["mode_change"]["from"] == "number"
    assert seen["mode_change"]["reason"] == reason


def test_a_refused_microphone_offers_actions_and_the_operator_sees_the_change(live_app, standin, phone):
    created, number = live_app.create_session("number")
    page = camera_only(phone, live_app)
    page.goto(created["url"])
    agree(page)
    shown_digits(page)
    expect(live_region(page)).to_contain_text("麦克风的权限被拒绝")
    expect(live_region(page)).to_contain_text("改为做动作")
    why = page.get_by_role("region", name="想在网页里直接录制？")
    expect(why).to_contain_text("麦克风")
    screenshot(page, "microphone-refused")
    assert live_app.session(created["id"])["mode_change"] is None
    switch_and_pass(page, live_app, standin, created["id"], number, "microphone_refused")


def test_where_the_operator_keeps_number_mode_it_says_how_to_allow_the_microphone(live_app, standin, phone):
    created, _ = live_app.create_session("number", action_fallback=False)
    page = camera_only(phone, live_app)
    page.goto(created["url"])
    agree(page)
    expect(live_region(page)).to_contain_text("麦克风的权限被拒绝")
    expect(live_region(page)).not_to_contain_text("改为做动作")
    expect(page.get_by_role("button", name="改为做动作")).to_be_hidden()
    why = page.get_by_role("region", name="想在网页里直接录制？")
    for platform in ("iPhone", "安卓", "微信"):
        expect(why).to_contain_text(platform)
    expect(why).to_contain_text("麦克风")
    expect(page.get_by_role("button", name="再次打开摄像头")).to_be_visible()
    assert live_app.session(created["id"])["mode"] == "number"


def test_a_silent_microphone_offers_actions_after_the_recording(live_app, standin, phone, browser_with):
    created, number = live_app.create_session("number")
    page = phone(browser=browser_with(sound=False), init_script=PERFORMER_SCRIPT)
    page.goto(created["url"])
    agree(page)
    shown_digits(page)
    anyway = page.get_by_role("button", name="仍然开始")  # the live check hears nothing either
    expect(anyway).to_be_enabled(timeout=30_000)
    anyway.click()
    expect(live_region(page)).to_contain_text("没有录到声音", timeout=20_000)
    expect(live_region(page)).to_contain_text("改为做动作")
    expect(page.get_by_role("button", name="重新录制")).to_be_visible()
    assert sent_to_juhe(standin, number) == []
    switch_and_pass(page, live_app, standin, created["id"], number, "microphone_silent")
