"""Accessibility in the browser: axe-core (vendored by scripts/vendor-axe.sh) finds no serious or
critical violation on any phase the tests can reach, in Chinese and English; focus moves to the
new phase's heading or button; the digits are read one by one; the ID field's X key works."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ..media import make_fixture
from .conftest import VERDICT_TIMEOUT_MS, next_idcard
from .test_capture_page import NUMBER_TITLE, agree, live_region, shown_digits, start_button

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
NO_RECORDER = "delete window.MediaRecorder;"  # the file input: a result without a 9 s recording
MISMATCH = 267509


def violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now (one line each)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => {
      const result = await axe.run(document, { resultTypes: ['violations'] });
      return result.violations.filter((v) => ['serious', 'critical'].includes(v.impact))
        .map((v) => `${v.impact} ${v.id}: ${v.help} — ` +
             v.nodes.map((n) => `${n.target.join(' ')} (${n.failureSummary})`).join('; '));
    }""")
    return found


def check(page, phase: str) -> None:
    found = violations(page)
    assert not found, f"{phase}:\n" + "\n".join(found)


def focused_text(page) -> str:
    return page.evaluate("document.activeElement ? document.activeElement.textContent.trim() : ''")


@pytest.fixture
def axe_phone(phone):
    """A phone whose pages accept the injected axe script (the page's CSP forbids inline ones)."""
    return lambda **kwargs: phone(bypass_csp=True, **kwargs)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_consent_declined_and_the_live_camera_have_no_serious_violation(live_app, axe_phone, lang):
    url, _number = live_app.new_session("number")
    page = axe_phone(**({"locale": "en-GB"} if lang == "en" else {}))
    page.goto(url + ("?lang=en" if lang == "en" else ""))
    expect(page.locator("#agree")).to_be_enabled()
    check(page, f"consent {lang}")
    page.locator("#decline").click()
    expect(page.locator("#declined-title")).to_be_focused()
    check(page, f"declined {lang}")
    page.locator("#reconsider").click()
    expect(page.locator("#consent-title")).to_be_focused()
    page.locator("#agree").click()
    expect(page.locator("#challenge-title")).to_be_focused()
    expect(page.locator("#start")).to_be_enabled(timeout=20_000)
    check(page, f"ready {lang}")


def test_the_digits_are_read_one_by_one(live_app, phone):
    url, _number = live_app.new_session("number")
    page = phone()
    page.goto(url)
    agree(page)
    digits = shown_digits(page)
    region = page.get_by_role("region", name=NUMBER_TITLE)
    # What a screen reader reads: the spaced digits; the big number itself is hidden from it.
    assert " ".join(digits) in page.locator("#digits .visually-hidden").text_content()
    expect(page.locator("#digits [aria-hidden='true']")).to_have_text(digits)
    expect(region.get_by_text(" ".join(digits))).to_have_count(1)
    start_button(page).click()
    expect(live_region(page)).to_contain_text(f"读出 {' '.join(digits)}", timeout=8_000)


def _upload(page, media_dir) -> None:
    page.get_by_label(re.compile("拍摄视频|Record a video")).set_input_files(make_fixture("safari_fmp4", media_dir))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_result_states_have_no_serious_violation(live_app, standin, axe_phone, media_dir, lang):
    url, number = live_app.new_session("silent")
    standin.script[number] = 267517
    page = axe_phone(init_script=NO_RECORDER)
    page.goto(url + ("?lang=en" if lang == "en" else ""))
    page.locator("#agree").click()
    expect(page.locator("#fallback-hint")).to_contain_text(re.compile("摄像头|camera"))
    check(page, f"fallback {lang}")

    _upload(page, media_dir)
    expect(page.locator("#retry")).to_be_visible(timeout=VERDICT_TIMEOUT_MS)
    expect(page.locator("#retry")).to_be_focused()
    check(page, f"retry {lang}")

    page.locator("#retry").click()
    expect(page.locator("#file")).to_be_enabled()
    _upload(page, media_dir)
    expect(live_region(page)).to_contain_text(re.compile("光线太暗|too dark"), timeout=VERDICT_TIMEOUT_MS)
    expect(page.locator("#result-title")).to_be_focused()  # no link to go to: the result's heading
    check(page, f"over {lang}")


def test_a_pass_and_a_refused_camera_have_no_serious_violation(live_app, axe_phone, media_dir):
    url, _number = live_app.new_session("action")
    page = axe_phone(camera=False)
    page.goto(url)
    agree(page)
    expect(live_region(page)).to_contain_text("权限被拒绝")
    expect(page.locator("#challenge-title")).to_be_focused()  # the challenge, then how to record it
    check(page, "refused")
    _upload(page, media_dir)
    expect(live_region(page)).to_contain_text("通过", timeout=VERDICT_TIMEOUT_MS)
    check(page, "passed")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_form_and_the_dead_ends_have_no_serious_violation(live_app, axe_phone, lang):
    suffix = "?lang=en" if lang == "en" else ""
    page = axe_phone()
    page.goto(f"{live_app.url}/{suffix}")
    check(page, f"form {lang}")
    page.locator("button[type=submit]").click()
    expect(page.locator(".error").first).to_be_visible()
    check(page, f"form with errors {lang}")
    response = page.goto(f"{live_app.url}/v/no-such-link-0123456789{suffix}")
    assert response.status == 404
    check(page, f"unknown link {lang}")


def test_the_closed_and_message_pages_have_no_serious_violation(live_app, axe_phone, make_app):
    """Pages this server does not show (STANDALONE is on; no rate limit is hit), drawn from another
    app's answers on this server's origin (the same static files)."""
    client = make_app(STANDALONE=False).test_client()
    page = axe_phone()
    page.goto(f"{live_app.url}/healthz")
    for path in ("/", "/?lang=en"):
        page.set_content(client.get(path).get_data(as_text=True))
        check(page, f"closed {path}")
    from flask import render_template
    with make_app().test_request_context("/"):
        html = render_template("message.html", title="请稍后再试", message="操作太频繁，请稍等一会儿再试。")
    page.set_content(html)
    check(page, "message")


def test_an_expired_link_has_no_serious_violation(live_app, axe_phone, make_app):
    """Drawn from another app's answer (this server's sessions cannot be aged from here); its
    script runs against this server, where the token is unknown: the notice is the server's."""
    import datetime as dt
    from urllib.parse import urlsplit

    from webapp.extensions import services
    from webapp.storage import VerificationSession

    from ..conftest import create_session
    client = make_app().test_client()
    created, _person = create_session(client, idcard=next_idcard())
    with client.application.app_context(), services().store.session() as db:
        db.get(VerificationSession, created["id"]).expires_at = dt.datetime(2000, 1, 1)
        db.commit()
    for suffix in ("", "?lang=en"):
        answer = client.get(urlsplit(created["url"]).path + suffix)
        assert answer.status_code == 410
        page = axe_phone()
        page.route("**/v/**", lambda route: route.fulfill(status=404, body="{}"))
        page.goto(f"{live_app.url}/healthz")
        page.set_content(answer.get_data(as_text=True))
        page.evaluate("document.getElementById('expired-title')?.closest('section').removeAttribute('hidden')")
        expect(page.locator("#expired-title")).to_be_visible()
        check(page, f"expired {suffix}")


def test_the_x_key_types_the_final_x_and_keeps_the_field_focused(live_app, phone):
    page = phone()
    page.goto(live_app.url + "/")
    field = page.get_by_label("身份证号")
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(field).to_have_accessible_description("共 18 位。末位是 X 的，请点输入框右边的 X 键。")
    number = next_idcard()
    field.fill(number[:17])
    page.get_by_role("button", name="输入字母 X").click()
    expect(field).to_have_value(number[:17] + "X")
    expect(field).to_be_focused()
