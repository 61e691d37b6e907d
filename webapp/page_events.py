"""The capture page's milestones, as it reports them (`POST /v/<token>/events`), and the drop-off
funnel an operator reads from them: of the people who opened the page, how many agreed, got the
camera, recorded, sent, passed, and why the others stopped, per period and browser family · OS.

Flask-free. The page is trusted with nothing: an event is a name from a closed vocabulary and a
detail from that name's own closed list (anything else becomes "other"); the browser family and
OS come from the request (webapp.clients), never from the body; no personal data is ever in one.
A session keeps at most MAX_PER_SESSION events. Reporting is loss-tolerant (the page sends each
with navigator.sendBeacon and goes on), so the funnel counts a step as reached when any later
step was: a lost "consent given" cannot make a person who recorded look as if they left.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import clients
from .guidance import guidance_for
from .storage import Attempt, PageEvent, VerificationSession, isoformat, utcnow
from .vocabulary import AttemptState, SessionStatus

MAX_BYTES = 1024
MAX_PER_SESSION = 200
OTHER = "other"

# Each event the page reports, with the details it may carry (None: no detail).
CAMERA_ERRORS = ("NotAllowedError", "PermissionDeniedError", "SecurityError", "NotFoundError",
                 "DevicesNotFoundError", "OverconstrainedError", "NotReadableError", "TrackStartError",
                 "AbortError", "TypeError")
FALLBACK_REASONS = ("denied", "missing", "busy", "unsupported", "insecure", "inapp", "recorder", "slow",
                    "microphone", "chosen")
REDO_REASONS = ("missed_light", "missed_face", "missed_order", "missed_mouth", "missed_eyes", "missed_voice",
                "missed_lips", "fault_small", "fault_error", "fault_short", "fault_stuck", "fault_silent")
VERDICTS = ("passed", "retry", "failed", "rejected")
EVENTS: dict[str, tuple[str, ...] | None] = {
    "opened": None,
    "consent_shown": None,
    "consent_given": None,       # the receipt (webapp.consent) keeps the version and language
    "consent_declined": None,
    "camera_granted": None,
    "camera_refused": CAMERA_ERRORS,        # the error's name, as the browser gave it
    "camera_unavailable": ("insecure", "unsupported", "inapp", "recorder", "slow"),
    "fallback": FALLBACK_REASONS,            # the phone's camera app offered instead, and why
    "coaching_passed": ("ready", "anyway"),  # 开始录制 with the checks passing, or 仍然开始
    "recording_started": None,
    "redo": REDO_REASONS,                    # recorded again on the phone, nothing sent
    "upload_sent": None,
    "verdict": VERDICTS,
}
PROBLEMS = ("consent_declined", "camera_refused", "camera_unavailable", "fallback", "redo")


@dataclass(frozen=True)
class Reported:
    """One event as read from the page: its name, its detail, and (consent only) the consent
    text's version and the page's language, for the receipt."""

    name: str
    detail: str | None
    version: str | None = None
    language: str | None = None


def parse(body: bytes) -> Reported | None:
    """The event in a page's report (JSON {"name", "detail"?, "version"?, "language"?}), or None
    when it is not one this service knows."""
    if len(body) > MAX_BYTES:
        return None
    try:
        sent = json.loads(body)
    except ValueError:
        return None
    if not isinstance(sent, dict) or not isinstance(sent.get("name"), str) or sent["name"] not in EVENTS:
        return None
    name = sent["name"]
    allowed = EVENTS[name]
    detail = sent.get("detail")
    if allowed is None:
        detail = None
    elif not isinstance(detail, str) or detail not in allowed:
        detail = OTHER
    version = sent.get("version")
    language = sent.get("language")
    return Reported(name, detail,
                    version if isinstance(version, str) and re.fullmatch(r"[0-9a-f]{16}", version) else None,
                    language if language in ("zh", "en") else None)


def record(db: Session, session: VerificationSession, event: Reported, client: clients.Client) -> bool:
    """Keep `event` for `session` (the caller commits); False when the session has its fill."""
    kept = db.scalar(select(func.count()).select_from(PageEvent).where(PageEvent.session_id == session.id)) or 0
    if kept >= MAX_PER_SESSION:  # counted, not loaded: a page reports a dozen of these an attempt
        return False
    db.add(PageEvent(session_id=session.id, at=utcnow(), name=event.name, detail=event.detail,
                     browser=client.browser, os=client.os))
    return True


def event_json(event: PageEvent) -> dict:
    """One event for the operator (the session JSON's `events`)."""
    return {"at": isoformat(event.at), "name": event.name, "detail": event.detail,
            "client": f"{event.browser} · {event.os}"}


# -- the drop-off funnel ------------------------------------------------------------------------
# (step, Chinese, English); each reached when any of its events was reported or a later step was.
STEPS = (("opened", "打开", "Opened"), ("consented", "同意", "Agreed"), ("camera", "摄像头", "Camera"),
         ("recorded", "录制", "Recorded"), ("sent", "发送", "Sent"), ("passed", "通过", "Passed"))
_STEP_EVENTS = {
    "opened": ("opened", "consent_shown", "consent_declined"),
    "consented": ("consent_given",),
    "camera": ("camera_granted",),  # the camera app (fallback) counts once its video is sent
    "recorded": ("recording_started",),
    "sent": ("upload_sent",),
}
LEFT = "left"  # nothing went wrong that the page saw: the person stopped (closed the page)


@dataclass
class _Journey:
    client: str
    names: list[str]
    problem: str | None = None  # the last thing that went wrong, as "name:detail"
    attempted: bool = False
    passed: bool = False
    last_outcome: str | None = None

    def reached(self) -> int:
        """How many steps this person reached (0: none)."""
        furthest = -1
        for index, (step, _zh, _en) in enumerate(STEPS):
            if step == "passed":
                hit = self.passed
            elif step == "sent":
                hit = self.attempted or "upload_sent" in self.names
            else:
                hit = any(name in self.names for name in _STEP_EVENTS[step])
            if hit:
                furthest = index
        return furthest + 1

    def why_stopped(self, step: str) -> str:
        """Why the person did not reach the step after `step`."""
        if step == "sent" and self.last_outcome:
            return f"outcome:{self.last_outcome}"
        return self.problem or LEFT


def compute(db: Session, operator: str, since: dt.datetime, until: dt.datetime) -> dict:
    """The drop-off funnel of `operator`'s sessions created in [since, until) whose page was opened:
    {"steps": [...], "clients": [{"name", "steps": [...]}]}, each step with the people who reached
    it, the share of the step before, and the top reasons of those who stopped there."""
    journeys: dict[str, _Journey] = {}
    query = (select(PageEvent.session_id, PageEvent.name, PageEvent.detail, PageEvent.browser, PageEvent.os)
             .join(VerificationSession, VerificationSession.id == PageEvent.session_id)
             .where(VerificationSession.operator == operator, VerificationSession.created_at >= since,
                    VerificationSession.created_at < until)
             .order_by(PageEvent.id))
    for session_id, name, detail, browser, system in db.execute(query):
        journey = journeys.get(session_id)
        if journey is None:
            journey = journeys[session_id] = _Journey(f"{browser or clients.OTHER} · {system or clients.OTHER}", [])
        journey.names.append(name)
        # The camera app offered after a refusal is its consequence, not another reason.
        if name in PROBLEMS and not (name == "fallback" and journey.problem and not journey.problem.startswith("fallback")):
            journey.problem = f"{name}:{detail}" if detail else name
    if journeys:
        for session_id, status in db.execute(select(VerificationSession.id, VerificationSession.status)
                                             .where(VerificationSession.id.in_(journeys))):
            journeys[session_id].passed = status == SessionStatus.PASSED
        for session_id, outcome in db.execute(select(Attempt.session_id, Attempt.outcome)
                                              .where(Attempt.session_id.in_(journeys),
                                                     Attempt.state == AttemptState.DONE)
                                              .order_by(Attempt.id)):
            journeys[session_id].attempted = True
            journeys[session_id].last_outcome = outcome
    by_client: dict[str, list[_Journey]] = defaultdict(list)
    for journey in journeys.values():
        by_client[journey.client].append(journey)
    return {
        "since": isoformat(since), "until": isoformat(until),
        "steps": _steps(journeys.values()),
        "clients": [{"name": name, "steps": _steps(group)}
                    for name, group in sorted(by_client.items(), key=lambda item: -len(item[1]))],
    }


def _steps(journeys: Iterable[_Journey]) -> list[dict]:
    journeys = list(journeys)
    reached = [j.reached() for j in journeys]
    steps: list[dict] = []
    for index, (step, zh, en) in enumerate(STEPS):
        count = sum(1 for r in reached if r > index)
        before: int = steps[-1]["count"] if steps else count
        stopped = Counter(j.why_stopped(step) for j, r in zip(journeys, reached, strict=True) if r == index + 1)
        steps.append({
            "step": step, "zh": zh, "en": en, "count": count,
            "share": round(count / before, 3) if before else None,  # of the step before
            # the people who reached this step and went no further, and why (the most frequent first)
            "stopped": sum(stopped.values()) if index + 1 < len(STEPS) else 0,
            "reasons": [{"reason": reason, "label": reason_label(reason), "count": n}
                        for reason, n in stopped.most_common(3)] if index + 1 < len(STEPS) else [],
        })
    return steps


_REASON_WORDS = {
    LEFT: ("离开了页面", "left the page"),
    "consent_declined": ("不同意", "declined"),
    "camera_refused": ("摄像头被拒绝", "camera refused"),
    "camera_unavailable": ("无法在网页中录制", "cannot record in the page"),
    "fallback": ("改用手机相机", "offered the camera app"),
    "redo": ("在手机上重录后没有发送", "re-recorded on the phone, never sent"),
}


def reason_label(reason: str) -> str:
    """A reason as the console shows it: Chinese, then English, then the detail."""
    name, _, detail = reason.partition(":")
    if name == "outcome":
        return f"{detail} {guidance_for(int(detail) if detail.isdigit() else detail).meaning}"
    zh, en = _REASON_WORDS.get(name, (name, name))
    return f"{zh} {en}" + (f" · {detail}" if detail else "")
