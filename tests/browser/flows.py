"""What a person does on the capture page, written once for every engine (tests/browser/engines):
each flow drives a page by what a screen reader names (buttons, regions, the live status line),
waits for what the person would see, and checks what Juhe (the stand-in) and the operator got.

A flow takes a `Run`: the engine, the app and the Juhe stand-in. Flows that end in a verdict
return what the engine recorded and which path the server took (copied or re-encoded), read
from the operator's API, for the support table in the README.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .engines import Engine, EngineTimeout, Page, is_shown, text_of, wait_text
from .engines import wait_for as wait

NUMBER_TITLE = "录制时请大声读出这 4 个数字"
ACTION_TITLE = "录制时请按顺序做这两个动作"
SILENT_TITLE = "录制时请看着摄像头，保持不动"
TITLES = {"number": NUMBER_TITLE, "action": ACTION_TITLE, "silent": SILENT_TITLE}
LIVENESS_TYPE = {"silent": "0", "number": "1", "action": "2"}
ACTION_CODES = {"张嘴": "1", "闭眼": "2"}
PROMPTS = {"张嘴": "张嘴，再合上", "闭眼": "闭眼 1 秒，再睁开"}
CONSENT = "开始前，请先确认"
DECLINED = "没有开始核验"
VERDICT_S = 90  # countdown, 6 s of video, upload, ffmpeg and the stand-in, on a loaded machine
SHOTS = Path(__file__).parent / "screenshots"


@dataclass
class Run:
    engine: Engine
    app: object     # conftest.LiveApp
    standin: object  # juhe_standin.JuheStandIn
    pages: list[Page] = field(default_factory=list)

    def page(self, **options) -> Page:
        page = self.engine.new_page(**options)
        self.pages.append(page)
        return page

    def sent(self, number: str) -> list[dict]:
        """The form of every request the stand-in received for this ID number."""
        return [r["form"] for r in list(self.standin.requests) if r["form"].get("idcard") == number]

    def shot(self, page: Page, name: str) -> None:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(SHOTS / f"{self.engine.name}-{name}.png")

    def close(self) -> None:
        for page in self.pages:
            page.close()


# -- the steps a person takes ------------------------------------------------------------------
def status(page: Page) -> str:
    return text_of(page, "status")


def agree(page: Page) -> None:
    wait_text(page, "region", CONSENT, "聚合数据")
    page.click("button", "同意并开始")


def open_and_agree(run: Run, mode: str, **page_options) -> tuple[Page, dict, str]:
    """A new session in `mode` (through the operator API), its link opened in a new page and the
    consent agreed to: (the page, the session's JSON, its ID number)."""
    created, number = run.app.create_session(mode)
    page = run.page(**page_options)
    page.goto(created["url"])
    agree(page)
    return page, created, number


def shown_digits(page: Page) -> str:
    return re.search(r"\d{4}", wait_text(page, "region", NUMBER_TITLE, re.compile(r"\d{4}"))).group(0)


def shown_actions(page: Page) -> list[str]:
    """The two actions in the order the page lists them (张嘴 / 闭眼)."""
    text = wait_text(page, "region", ACTION_TITLE, re.compile(r"(张嘴|闭眼).*(张嘴|闭眼)", re.S))
    return re.findall("张嘴|闭眼", text)[:2]


def record(page: Page) -> None:
    """Press 开始录制 once the live checks allow it; the page records and uploads by itself. Where
    they never pass (an engine's detector slowed down by a loaded machine), 仍然开始, as a person
    would: the coaching itself is tested in test_coaching.py."""
    try:
        page.click("button", "开始录制", exact=True, timeout=30)
    except EngineTimeout:
        try:
            page.click("button", "仍然开始", exact=True, timeout=5)
        except EngineTimeout as error:
            seen = page.call("() => [document.getElementById('capture').dataset.phase, "
                             "[...document.querySelectorAll('button')].filter((b) => b.offsetParent)"
                             ".map((b) => `${b.textContent}${b.disabled ? ' (disabled)' : ''}`)]")
            raise EngineTimeout(f"{error}; the page: phase, buttons {seen}, says {status(page)!r}") from None
    wait_text(page, "status", None, "正在录制", timeout=10)


def passed(page: Page) -> None:
    """The verdict says 核验通过. Where the page's own check objected to the recording first (a
    loaded machine slowing an engine's looks at the face), the person sure of it presses
    仍然发送, as the page offers: the check itself, frames an engine has not painted included, is
    tested in test_performance_check.py."""
    wait(lambda: "核验通过" in status(page) or is_shown(page, "button", "仍然发送"),
         "the verdict, or the page's own objection", timeout=VERDICT_S)
    if "核验通过" not in status(page):
        page.click("button", "仍然发送", exact=True, timeout=10)
        wait_text(page, "status", None, "核验通过", timeout=VERDICT_S)
    assert not is_shown(page, "button", "重新"), "a passed page offers to record again"


def operator_video(run: Run, session_id: str) -> dict:
    """The operator's view of the last attempt's video: what was received, which path it took."""
    attempts = run.app.session(session_id)["attempts"]
    assert attempts, "the operator sees no attempt"
    return attempts[-1]["video"]


def recorded(run: Run, mode: str, session_id: str) -> dict:
    video = operator_video(run, session_id)
    received = video["received"]
    checks = run.app.session(session_id)["attempts"][-1]["page_checks"] or {}
    return {"engine": run.engine.name, "mode": mode, "container": received["container"],
            "video_codec": received["video_codec"], "audio_codec": received["audio_codec"],
            "size": f"{received['width']}x{received['height']}", "duration": received["duration"],
            "path": video["path"], "browser": video["browser"],
            "page_check": checks.get("verdict"), "looks_per_s": checks.get("fps")}


# -- the flows ---------------------------------------------------------------------------------
def consent_can_be_declined_and_reconsidered(run: Run) -> None:
    url, _ = run.app.new_session("number")
    page = run.page()
    page.goto(url)
    terms = wait_text(page, "region", CONSENT, "聚合数据")
    assert "声音" in terms and "公安" in terms, terms
    assert not is_shown(page, "button", "开始录制"), "recording offered before consent"
    run.shot(page, "consent")
    page.click("button", "暂不核验")
    assert "没有收集任何信息" in wait_text(page, "region", DECLINED, "没有收集")
    page.click("button", "我想好了，回到上一步")
    agree(page)
    shown_digits(page)
    assert not is_shown(page, "region", CONSENT)


def number_mode_passes(run: Run) -> dict:
    page, created, number = open_and_agree(run, "number")
    digits = shown_digits(page)
    record(page)
    run.shot(page, "recording-number")
    passed(page)
    run.shot(page, "passed")
    sent = run.sent(number)
    assert [(f["livenessType"], f["validateData"]) for f in sent] == [("1", digits)]
    return recorded(run, "number", created["id"])


def action_mode_passes(run: Run) -> dict:
    page, created, number = open_and_agree(run, "action")
    order = shown_actions(page)
    assert sorted(order) == ["张嘴", "闭眼"], order
    record(page)
    # Prompted one after the other, in the order shown.
    wait_text(page, "status", None, PROMPTS[order[0]], timeout=8)
    wait_text(page, "status", None, PROMPTS[order[1]], timeout=8)
    passed(page)
    sent = run.sent(number)
    assert [(f["livenessType"], f["validateData"]) for f in sent] == [
        ("2", ",".join(ACTION_CODES[a] for a in order))]
    return recorded(run, "action", created["id"])


def a_face_that_does_nothing_is_caught_and_may_be_sent_anyway(run: Run) -> None:
    """Action mode, the camera's face never moving (engines/camera.js `perform=still`): the page
    says what it did not see before anything is sent; 仍然发送 sends it with what the page saw."""
    created, number = run.app.create_session("action")
    page = run.page()
    page.goto(created["url"] + "?perform=still")
    agree(page)
    shown_actions(page)
    record(page)
    said = wait_text(page, "status", None, re.compile("没有看到(张嘴|闭眼)"), timeout=30)
    assert "没有上传" in said, said
    run.shot(page, "performance-missed")
    assert run.sent(number) == [] and run.app.session(created["id"])["attempts"] == []
    page.click("button", "仍然发送")
    passed(page)
    [attempt] = run.app.session(created["id"])["attempts"]
    assert attempt["page_checks"]["verdict"] == "missed" and attempt["page_checks"]["sent_anyway"], attempt
    assert len(run.sent(number)) == 1


def silent_mode_passes(run: Run) -> dict:
    page, created, number = open_and_agree(run, "silent")
    wait_text(page, "region", SILENT_TITLE, "看着摄像头")
    record(page)
    passed(page)
    assert [f["livenessType"] for f in run.sent(number)] == ["0"]
    # The page told the operator each milestone on the way (sendBeacon, or a fetch kept alive).
    journey = ["opened", "consent_given", "camera_granted", "recording_started", "upload_sent", "verdict"]
    events = wait(lambda: (names := [e["name"] for e in run.app.session(created["id"])["events"]])
                  and all(n in names for n in journey) and names, "the page's milestones", 15)
    assert [n for n in events if n in journey] == journey, events
    assert run.app.session(created["id"])["consent"]["decision"] == "given"
    return recorded(run, "silent", created["id"])


def a_failed_answer_is_explained_and_a_new_challenge_passes(run: Run) -> None:
    page, _, number = open_and_agree(run, "number")
    run.standin.script[number] = 267517  # too dark
    first = shown_digits(page)
    record(page)
    said = wait_text(page, "status", None, "光线太暗", timeout=VERDICT_S)
    assert "还可以再试" in said, said
    run.shot(page, "failed")
    del run.standin.script[number]
    page.click("button", "重新录制")
    second = wait(lambda: (d := shown_digits(page)) != first and d, "new digits")
    record(page)
    passed(page)
    assert [f["validateData"] for f in run.sent(number)] == [first, second]


def a_refused_camera_is_explained_and_the_phone_camera_sends(run: Run, video: Path) -> None:
    page, _, number = open_and_agree(run, "action", camera=False)
    wait_text(page, "status", None, "权限被拒绝", timeout=20)
    # The engines run as computers: a computer's way first, the phones' folded under 其他系统.
    why = wait_text(page, "region", "想在网页里直接录制？", "电脑：")
    assert "其他系统" in why and "iPhone" not in why, why
    assert is_shown(page, "button", "再次打开摄像头")
    assert "张嘴" in text_of(page, "region", ACTION_TITLE)  # the challenge, for the camera app
    run.shot(page, "refused")
    page.set_file("拍摄视频", video)
    passed(page)
    assert len(run.sent(number)) == 1


def the_phone_camera_can_be_chosen_instead(run: Run, video: Path) -> None:
    page, _, number = open_and_agree(run, "number")
    digits = shown_digits(page)
    page.click("button", "改用手机相机录制")
    wait_text(page, "status", None, "请改用手机相机录制")
    remember = text_of(page, "region", NUMBER_TITLE)
    assert digits in remember.replace(" ", ""), remember
    page.set_file("拍摄视频", video)
    passed(page)
    assert [f["validateData"] for f in run.sent(number)] == [digits]
