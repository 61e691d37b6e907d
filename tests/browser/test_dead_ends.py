"""No dead ends: a link that leads nowhere says what to do; after an identity answer the
standalone page goes back to the form; every final state goes back to return_url; framed, the
page never says "close this page" and tells embed.js its height, so it never scrolls inside."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import VERDICT_TIMEOUT_MS, next_idcard, screenshot
from .test_capture_page import agree, live_region, record

MISMATCH = 267509  # name and ID number do not match: final, a retry cannot change it


def test_an_unknown_link_says_what_to_do_next(live_app, phone):
    page = phone()
    response = page.goto(f"{live_app.url}/v/no-such-link-0123456789")
    assert response.status == 404
    notice = page.get_by_role("region", name="链接无效或已失效")
    expect(notice).to_contain_text("回到发给您链接的网站或应用")
    expect(notice).to_contain_text("重新发起")
    expect(notice).to_contain_text("15 分钟")  # SESSION_TTL
    screenshot(page, "link-unknown")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("region", name=re.compile("not valid"))).to_contain_text("Start the face verification again")


def test_standalone_after_an_identity_answer_goes_back_to_the_form(live_app, standin, phone):
    number = next_idcard()
    standin.script[number] = MISMATCH
    page = phone()
    page.goto(live_app.url + "/")
    page.get_by_label("姓名").fill("张三")
    page.get_by_label("身份证号").fill(number)
    page.get_by_label("核验方式").select_option("silent")
    page.get_by_role("button", name="下一步").click()
    agree(page)
    record(page)
    expect(live_region(page)).to_contain_text("不一致", timeout=VERDICT_TIMEOUT_MS)
    edit = page.get_by_role("link", name="修改信息")
    expect(edit).to_be_visible()
    expect(page.get_by_role("button", name="重新录制")).to_have_count(0)
    screenshot(page, "over-identity-standalone")
    edit.click()
    expect(page.get_by_label("身份证号")).to_be_visible()


def test_a_failed_session_goes_back_to_return_url(live_app, standin, phone):
    done = live_app.operator_page("done")
    url, number = live_app.new_session("silent", return_url=f"{done}?ref=9")
    standin.script[number] = MISMATCH
    page = phone()
    page.goto(url)
    agree(page)
    record(page)
    expect(live_region(page)).to_contain_text("不一致", timeout=VERDICT_TIMEOUT_MS)
    back = page.get_by_role("link", name="返回")
    expect(back).to_have_attribute("href", re.compile(re.escape(f"{done}?ref=9&session_id=ses_")))
    expect(page.get_by_role("link", name="修改信息")).to_have_count(0)   # an operator's session
    screenshot(page, "over-return")
    back.click()  # a final failure stays on screen until the person goes (test_end_screens.py)
    page.wait_for_url(re.compile(re.escape(f"{done}?ref=9&session_id=")))


OPERATOR_PAGE = """<!doctype html><title>A shop</title><body style="margin:0">
<div id="box"></div>
<script src="{app}/static/embed.js"></script>
<script>
window.outcome = null;
LivenessEmbed.open(document.getElementById('box'), "{url}", {{height: '300px'}})
  .then((r) => {{ window.outcome = r.status; }});
</script>"""


def test_framed_the_page_sizes_its_frame_and_never_says_close_this_page(live_app, standin, phone):
    url, _number = live_app.new_session("number", embed_origin=live_app.operator_origin)
    page = phone()
    page.goto(live_app.operator_page("shop", OPERATOR_PAGE.format(app=live_app.url, url=url)))
    iframe = page.locator("#box iframe")
    frame = page.frame_locator("#box iframe")

    def fits() -> bool:
        """The frame is as tall as its page: nothing scrolls inside it."""
        inner = page.frames[1].evaluate("[document.documentElement.scrollHeight, innerHeight]")
        return abs(inner[0] - inner[1]) <= 1

    expect(frame.get_by_role("button", name="同意并开始")).to_be_visible()
    page.wait_for_function("document.querySelector('#box iframe').getBoundingClientRect().height > 300")
    assert fits()
    agree(frame)
    record(frame)
    expect(frame.get_by_role("status")).to_contain_text("通过", timeout=VERDICT_TIMEOUT_MS)
    page.wait_for_function("window.outcome === 'passed'")
    page.wait_for_timeout(500)
    expect(frame.get_by_role("status")).not_to_contain_text("关闭")
    assert fits(), page.frames[1].evaluate("[document.documentElement.scrollHeight, innerHeight]")
    screenshot(page, "framed-passed")
    assert iframe.bounding_box()["height"] < 700
