"""The operator console: sign in with the operator key (a CSRF-protected form, a cookie of the
console's own under /console), list the sessions masked, read one session's attempts with codes,
guidance and charge, and find the top failure reason per browser in the funnel's charts and
tables, in real Chromium. Uploads come from phones the console must tell apart (WeChat on
Android, Safari on iOS) through the real upload endpoint."""
from __future__ import annotations

import csv
import re
import time

import pytest
import requests
from flask.sessions import SecureCookieSessionInterface
from playwright.sync_api import expect

from webapp import clients, sessions

from ..conftest import AUTH, OPERATOR_KEY, idcard
from .conftest import screenshot

WECHAT_ANDROID = ("Mozilla/5.0 (Linux; Android 13; V2238A Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
                  "(KHTML, like Gecko) Version/4.0 Chrome/107.0.5304.141 Mobile Safari/537.36 XWEB/5235 "
                  "MMWEBSDK/20230805 MMWEBID/2585 MicroMessenger/8.0.42.2460(0x28002A3B) WeChat/arm64 "
                  "Weixin NetType/WIFI Language/zh_CN ABI/arm64")
SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
              "Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
DESKTOP = {"viewport": {"width": 1280, "height": 900}, "locale": "zh-CN"}


def upload_from(live_app, page_url: str, video, user_agent: str) -> dict:
    """What a phone's capture page does: draw the challenge, upload the recording."""
    path = page_url.split(live_app.url, 1)[1]
    headers = {"User-Agent": user_agent}
    challenge = requests.post(f"{live_app.url}{path}/challenge", headers=headers, timeout=10).json()
    with open(video, "rb") as fh:
        answer = requests.post(f"{live_app.url}{path}/upload", headers=headers, timeout=60,
                               data={"challenge": challenge["challenge"]["id"]},
                               files={"video": ("clip.mp4", fh, "video/mp4")})
    assert answer.status_code == 200, answer.text
    return answer.json()


def sign_in(page, live_app, key: str = OPERATOR_KEY) -> None:
    page.goto(f"{live_app.url}/console/")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.get_by_label("运营方密钥").fill(key)
    page.get_by_role("button", name="登录").click()


def test_an_operator_finds_the_top_failure_reason_per_browser(live_app, standin, browser, media):
    clip = media("safari_fmp4")
    # WeChat on Android: twice too dark (one session, both attempts), then a pass in another.
    dark_url, dark_id = live_app.new_session("number", reference="console-dark")
    standin.script[dark_id] = 267517
    assert upload_from(live_app, dark_url, clip, WECHAT_ANDROID)["outcome"]["result"] == "retry"
    assert upload_from(live_app, dark_url, clip, WECHAT_ANDROID)["outcome"]["result"] == "failed"
    pass_url, _ = live_app.new_session("number", reference="console-pass")
    assert upload_from(live_app, pass_url, clip, WECHAT_ANDROID)["outcome"]["result"] == "passed"
    ios_url, _ = live_app.new_session("number", reference="console-ios")
    assert upload_from(live_app, ios_url, clip, SAFARI_IOS)["outcome"]["result"] == "passed"

    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        # A wrong key is refused in words that say what to do.
        sign_in(page, live_app, key="not-the-key")
        expect(page.get_by_role("alert")).to_contain_text("运营方密钥不正确")
        page.get_by_label("运营方密钥").fill(OPERATOR_KEY)
        page.get_by_role("button", name="登录").click()

        # The sessions, identity masked (searched for: the other tests' sessions share the list).
        page.get_by_label("业务编号").fill("console-dark")
        page.get_by_role("button", name="搜索").click()
        table = page.locator("#sessions")
        expect(table).to_contain_text("console-dark")
        row = table.locator("tr", has_text="console-dark")
        expect(row).to_contain_text("张*")
        expect(row).to_contain_text(dark_id[:4] + "*" * 10 + dark_id[-4:])
        expect(row).to_contain_text("未通过 failed")
        assert dark_id not in page.content()

        # One session: each attempt's code, Juhe's reason, the guidance given and the charge.
        row.get_by_role("link").click()
        attempts = page.locator("#attempts tbody tr")
        expect(attempts).to_have_count(2)
        for i in range(2):
            expect(attempts.nth(i)).to_contain_text("267517")
            expect(attempts.nth(i)).to_contain_text("光线太暗：请到明亮的地方")
            expect(attempts.nth(i)).to_contain_text("未收费")
            expect(attempts.nth(i)).to_contain_text("WeChat · Android")
        expect(page.locator("#status")).to_have_text("未通过 failed")

        # The funnel: charts drawn from the vendored library, the numbers in tables beside them.
        page.get_by_role("link", name="失败漏斗").click()
        expect(page.locator("body")).to_have_attribute("data-charts", "drawn")
        wechat = page.locator("#clients tr", has_text="WeChat · Android")
        expect(wechat.locator("td").nth(0)).to_have_text("3")
        expect(wechat.locator("td").nth(1)).to_have_text("1")
        expect(wechat).to_contain_text("光线太暗（267517）67%")
        expect(page.locator("#clients tr", has_text="Safari · iOS").locator("td").nth(2)).to_have_text("—")
        expect(page.locator("#systems tr", has_text="Android")).to_contain_text("光线太暗")
        expect(page.locator("#codes tr", has_text="267517")).to_contain_text("光线太暗")
        assert re.search(r"收费 \d+ 次", page.locator("#totals").inner_text())
        # The Prometheus counters' table: every upload's outcome, service-wide.
        expect(page.locator("#service tr", has_text="267517")).to_contain_text("光线太暗")
        for chart in ("chart-codes", "chart-clients", "chart-systems"):
            painted = page.evaluate("""(id) => {
                const c = document.getElementById(id);
                const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i]) n++;
                return n; }""", chart)
            assert painted > 1000, chart
        page.get_by_label("时段").select_option("1")
        page.get_by_role("button", name="查看").click()
        expect(page).to_have_url(re.compile(r"/console/funnel\?days=1$"))
        expect(page.locator("body")).to_have_attribute("data-charts", "drawn")

        # Its cookie is its own: scoped to /console, HttpOnly, SameSite Strict; nothing else set.
        assert [(c["name"], c["path"], c["httpOnly"], c["sameSite"]) for c in context.cookies()] == [
            ("liveness_console", "/console", True, "Strict")]
        assert context.cookies(f"{live_app.url}/v/any") == []  # not sent to the capture pages
        assert not [p for p in problems if "Content Security Policy" in p], problems

        # Signing out ends it: the console asks for the key again.
        page.get_by_role("button", name="退出").click()
        expect(page).to_have_url(re.compile(r"/console/login$"))
        page.goto(f"{live_app.url}/console/funnel")
        expect(page).to_have_url(re.compile(r"/console/login$"))
    finally:
        context.close()


def test_an_operator_searches_pages_and_downloads_the_csv(live_app, browser):
    """30 sessions of one batch among the others: searched for, paged through with the search
    kept, and downloaded whole as a CSV that Excel reads (BOM) with no identity in clear."""
    made = {}
    for n in range(30):
        created, number = live_app.create_session("silent", reference=f"batch-{n:02d}" if n else "=1+1")
        made[created["id"]] = number
    context = browser.new_context(**DESKTOP, accept_downloads=True)
    page = context.new_page()
    try:
        sign_in(page, live_app)
        page.get_by_label("业务编号").fill("batch-")
        page.get_by_label("状态").select_option("pending")
        page.get_by_role("button", name="搜索").click()
        expect(page).to_have_url(re.compile(r"/console/\?reference=batch-&id=&status=pending&from=&to=$"))
        expect(page.locator("#count")).to_contain_text("第 1–25 条，共 29 条")
        expect(page.locator("#sessions tbody tr")).to_have_count(25)
        expect(page.locator("#sessions tbody tr").first).to_contain_text("待完成 pending")

        page.get_by_role("link", name="下一页").click()
        expect(page).to_have_url(re.compile(r"reference=batch-.*page=2"))
        expect(page.locator("#count")).to_contain_text("第 26–29 条，共 29 条")
        expect(page.get_by_label("业务编号")).to_have_value("batch-")
        page.get_by_role("link", name="上一页").click()
        expect(page.locator("#count")).to_contain_text("第 1–25 条")

        # The whole search in one file, all pages; and the reference that looks like a formula.
        page.get_by_label("业务编号").fill("")
        page.get_by_label("状态").select_option("")
        page.get_by_label("会话号").fill("")
        page.get_by_role("button", name="搜索").click()
        with page.expect_download() as download:
            page.locator("#export").click()
        raw = open(download.value.path(), "rb").read()
        assert raw.startswith(b"\xef\xbb\xbf") and download.value.suggested_filename.endswith(".csv")
        text = raw.decode("utf-8-sig")
        table = {row["id"]: row for row in csv.DictReader(text.splitlines())}
        assert set(made) <= set(table)
        assert sorted(table[i]["reference"] for i in made) == sorted(["'=1+1", *(f"batch-{n:02d}" for n in range(1, 30))])
        assert not any(number in text for number in made.values()) and "张三" not in text
        screenshot(page, "console-sessions-desktop")
    finally:
        context.close()


def test_the_console_fits_a_phone(live_app, phone, media):
    """At 390x844 nothing scrolls sideways but the wide tables inside their own region; the
    sessions are cards whose values read beside their names, and every tap target is >= 44 px."""
    url, _ = live_app.new_session("silent", reference="phone-card-with-a-long-reference-0123456789")
    upload_from(live_app, url, media("safari_fmp4"), SAFARI_IOS)
    page = phone(camera=False, viewport={"width": 390, "height": 844})
    sign_in(page, live_app)
    expect(page.locator("#sessions")).to_be_visible()

    def no_sideways_scroll() -> None:
        widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]")
        assert widths == [390, 390, 390], widths

    no_sideways_scroll()
    card = page.locator("#sessions tbody tr").first
    box = card.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    status = card.locator("td", has_text="passed")
    assert status.evaluate("td => getComputedStyle(td, '::before').content").startswith('"状态')
    expect(status).to_be_visible()
    cell = status.bounding_box()
    assert cell["x"] >= 0 and cell["x"] + cell["width"] <= 390
    assert float(status.evaluate("td => getComputedStyle(td).fontSize").removesuffix("px")) >= 14
    for target in [card.get_by_role("link"), page.get_by_role("button", name="搜索"), page.get_by_label("状态"),
                   page.get_by_label("业务编号"), page.get_by_role("link", name="失败漏斗")]:
        assert target.bounding_box()["height"] >= 44, target
    card.scroll_into_view_if_needed()
    screenshot(page, "console-sessions-390")

    page.get_by_label("业务编号").fill("phone-card")
    page.get_by_role("button", name="搜索").click()
    expect(page.locator("#sessions tbody tr")).to_have_count(1)
    no_sideways_scroll()
    card.get_by_role("link").click()
    expect(page.locator("#status")).to_have_text("已通过 passed")
    no_sideways_scroll()
    # The attempts' nine columns scroll inside their own table, not the page.
    inside = page.locator("#attempts").evaluate("t => [t.scrollWidth > t.clientWidth, t.clientWidth]")
    assert inside[0] and inside[1] <= 390, inside
    screenshot(page, "console-session-390")
    page.get_by_role("link", name="失败漏斗").click()
    expect(page.locator("body")).to_have_attribute("data-charts", re.compile("drawn|no-data"))
    no_sideways_scroll()
    screenshot(page, "console-funnel-390")


# -- the same rules without a browser ------------------------------------------------------------
def csrf_token(client) -> str:
    page = client.get("/console/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def test_sign_in_needs_the_forms_csrf_token(client):
    refused = client.post("/console/login", data={"key": OPERATOR_KEY})
    assert refused.status_code == 400 and "表单已过期" in refused.get_data(as_text=True)
    assert client.get("/console/").status_code == 302
    signed = client.post("/console/login", data={"key": OPERATOR_KEY, "csrf_token": csrf_token(client)})
    assert signed.status_code == 303 and client.get("/console/").status_code == 200
    [cookie] = signed.headers.getlist("Set-Cookie")
    assert cookie.startswith("liveness_console=") and "Path=/console" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_cookie_signed_for_the_rest_of_the_site_does_not_open_the_console(app):
    """The standalone form's session is signed with Flask's default salt: under /console it is
    worthless, even carrying a real operator's fingerprint."""
    with app.test_request_context("/"):
        forged = SecureCookieSessionInterface().get_signing_serializer(app).dumps(
            {"operator": sessions.operator_fingerprint(OPERATOR_KEY), "at": time.time()})
    client = app.test_client()
    client.set_cookie("liveness_console", forged, path="/console")
    assert client.get("/console/").status_code == 302


def test_another_operators_session_is_not_shown(make_app):
    app = make_app(OPERATOR_API_KEYS=f"{OPERATOR_KEY},other-operator-key")
    client = app.test_client()
    created = client.post("/api/v1/sessions", headers=AUTH,
                          json={"realname": "张三", "idcard": idcard(5)}).get_json()
    client.post("/console/login", data={"key": "other-operator-key", "csrf_token": csrf_token(client)})
    assert client.get(f"/console/sessions/{created['id']}").status_code == 404
    assert created["id"] not in client.get("/console/").get_data(as_text=True)
    # Nor the service-wide counters, which mix every operator's traffic.
    funnel_page = client.get("/console/funnel").get_data(as_text=True)
    assert "id=\"service\"" not in funnel_page and "全部上传结果" not in funnel_page


@pytest.mark.parametrize("user_agent, seen", [
    (WECHAT_ANDROID, ("WeChat", "Android")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Mobile/15E148 MicroMessenger/8.0.40(0x18002831) NetType/WIFI Language/zh_CN", ("WeChat", "iOS")),
    ("Mozilla/5.0 (Linux; U; Android 12; zh-CN; M2012K11AC Build/SKQ1.211006.001) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Version/4.0 Chrome/89.0.4389.116 Mobile Safari/537.36 AlipayClient/10.5.20", ("Alipay", "Android")),
    (SAFARI_IOS, ("Safari", "iOS")),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
     "Mobile Safari/537.36", ("Chrome", "Android")),
    ("Mozilla/5.0 (Phone; OpenHarmony 4.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 "
     "Safari/537.36 ArkWeb/4.1.6.1 Mobile HuaweiBrowser/5.0.4.300", ("Huawei Browser", "HarmonyOS")),
    ("python-requests/2.32", ("other", "other")),
    (None, ("other", "other")),
])
def test_the_browser_family_and_os_are_read_from_the_user_agent(user_agent, seen):
    client = clients.parse(user_agent)
    assert (client.browser, client.os) == seen
