"""What a phone downloads before the camera starts (the page up to its consent screen: the
camera is asked for only once the person agrees), measured on the wire by Chromium: at most
30 KB the first time (static files gzipped), and no static file again on the next visit
(versioned URLs, cached for a year)."""
from __future__ import annotations

import json

from playwright.sync_api import expect

from .conftest import SCREENSHOTS
from .test_capture_page import agree, live_region

BUDGET_BYTES = 30 * 1024
KINDS = ("document", "stylesheet", "script", "image")


def _visit(page, url: str) -> list[dict]:
    loaded: list[dict] = []

    def finished(request) -> None:
        if request.resource_type in KINDS:
            sizes = request.sizes()
            loaded.append({"url": request.url.split("?")[0].rsplit("/", 1)[-1], "type": request.resource_type,
                           "bytes": sizes["responseBodySize"] + sizes["responseHeadersSize"],
                           "encoding": (request.response().headers.get("content-encoding") or "")})
    page.on("requestfinished", finished)
    page.goto(url)
    # Before the camera: the page until its consent screen is ready (the camera is asked for
    # only once the person agrees).
    expect(page.get_by_role("button", name="同意")).to_be_enabled()
    page.wait_for_load_state("networkidle")
    before = list(loaded)
    agree(page)
    expect(live_region(page)).to_contain_text("权限被拒绝")  # everything the page needs is loaded
    page.wait_for_load_state("networkidle")
    page.remove_listener("requestfinished", finished)
    return before, loaded


def test_the_page_before_the_camera_is_small_and_cached_on_the_next_visit(live_app, phone):
    url, _ = live_app.new_session("action")
    page = phone(camera=False)
    first, through_camera = _visit(page, url)
    total = sum(r["bytes"] for r in first)
    again_url, _ = live_app.new_session("action")
    _, second = _visit(page, again_url)  # the same browser, another session's page

    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / "page-weight.json").write_text(json.dumps(
        {"before_the_camera_bytes": total, "first": first,
         "through_the_camera_request_bytes": sum(r["bytes"] for r in through_camera),
         "second_visit_bytes": sum(r["bytes"] for r in second), "second": second}, indent=2))
    report = "\n".join(f"{r['bytes']:>7,d} {r['encoding']:>5} {r['url']}" for r in through_camera)
    print(f"\nbefore the camera, on the wire: {total:,} bytes; through the camera request: "
          f"{sum(r['bytes'] for r in through_camera):,}\n{report}")

    assert total <= BUDGET_BYTES, report
    assert all(r["encoding"] == "gzip" for r in through_camera if r["type"] in ("stylesheet", "script")), report
    # Whatever the first visit fetched comes from the cache now (the action icons may be asked
    # for only on one of the visits: they come with the challenge, after the camera request).
    fetched = {r["url"] for r in through_camera}
    from_network = [r for r in second if r["type"] != "document" and r["bytes"] > 0 and r["url"] in fetched]
    assert not from_network and any(r["type"] == "script" for r in second), second  # all from the cache
