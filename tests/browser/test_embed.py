"""An operator on another site frames the page with embed.js, with third-party cookies blocked:
the person passes, and the operator's page gets the result from the right frame only."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import VERDICT_TIMEOUT_MS
from .test_capture_page import agree, record, sent_to_juhe

OPERATOR_PAGE = """<!doctype html><title>A bank</title>
<div id="box"></div>
<iframe id="decoy" srcdoc="<p>an ad</p>"></iframe>
<script src="{app}/static/embed.js"></script>
<script>
window.outcome = null;
LivenessEmbed.open(document.getElementById('box'), "{url}", {{height: '700px'}})
  .then((r) => {{ window.outcome = {{sessionId: r.sessionId, status: r.status}}; }});
// Forged results, from this page and from another frame: embed.js must ignore both.
window.postMessage({{type: 'liveness:result', sessionId: 'ses_forged', status: 'passed'}}, '*');
document.getElementById('decoy').contentWindow.parent.postMessage(
    {{type: 'liveness:result', sessionId: 'ses_forged2', status: 'passed'}}, '*');
</script>"""


def test_operator_on_another_site_embeds_the_page_and_gets_the_verdict(live_app, standin, phone):
    operator = live_app.operator_origin          # http://127.0.0.1:<port>; the page is on localhost
    assert operator.split(":")[1] != live_app.url.split(":")[1]
    url, number = live_app.new_session("number", embed_origin=operator)
    page = phone()
    page.goto(live_app.operator_page("bank", OPERATOR_PAGE.format(app=live_app.url, url=url)))
    frame = page.frame_locator("#box iframe")
    agree(frame)
    assert page.get_attribute("#box iframe", "allow") == "camera; microphone"

    record(frame)
    expect(frame.get_by_role("status")).to_contain_text("通过", timeout=VERDICT_TIMEOUT_MS)
    page.wait_for_function("window.outcome !== null")
    outcome = page.evaluate("window.outcome")
    assert outcome["status"] == "passed" and outcome["sessionId"].startswith("ses_")
    assert outcome["sessionId"] not in ("ses_forged", "ses_forged2")
    [form] = [r["form"] for r in standin.requests if r["form"].get("idcard") == number]
    assert form["livenessType"] == "1" and len(form["validateData"]) == 4
    assert len(sent_to_juhe(standin, number)) == 1
    # The browser runs with third-party cookies off, and the flow needed none at all: the framed
    # page's origin holds no cookie after a whole verification.
    assert page.context.cookies(live_app.url) == []
