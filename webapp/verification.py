"""One video's path, top to bottom: from an uploaded file to Juhe's verdict, recorded and explained.

    claim the challenge → prepare the video (probe, check, normalise) → record the attempt as
    processing → call Juhe → record what Juhe said → end the session when nothing more can pass
    → tell the person what to do next

Each step commits before the next starts, so a browser that disconnects while Juhe is answering
loses nothing: the attempt is recorded and the page reads it back from its state endpoint. A
video that fails the local checks never reaches Juhe and is not an attempt.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import sessions, video
from .guidance import Guidance, guidance_for
from .juhe import JuheClient, JuheError, JuheResult, VerifyRequest
from .settings import Settings
from .storage import Attempt, Challenge, Store, find_session, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What the page shows after an upload."""

    result: str            # passed | failed | retry | rejected
    guidance: Guidance
    session_status: str
    attempts_left: int
    challenge_id: str
    score: float | None = None


def verify_upload(store: Store, settings: Settings, client: JuheClient, tools: video.Tools,
                  page_token: str, challenge_id: str, upload: Path,
                  on_finished: Callable[[str], None] | None = None) -> Outcome:
    """Run one uploaded video through the whole path. Raises sessions.SessionStateError when the
    session cannot take an upload (closed, expired, busy, challenge used or expired).

    `on_finished(session_id)` is called once the session reached passed or failed (webhooks).
    """
    started = time.monotonic()

    # 1. Claim the challenge: single use, checked against the session's state.
    with store.session() as db:
        session = _load(db, settings, page_token)
        sessions.require_open(session)
        challenge = sessions.claim_challenge(db, session, challenge_id)
        request_fields = dict(idcard=session.idcard, realname=session.realname,
                              liveness_type=challenge.liveness_type,
                              validate_data=challenge.validate_data,
                              best_frame=session.best_frames == 1,
                              best_frame_num=session.best_frames if session.best_frames >= 2 else None)
        session_id, mode = session.id, session.mode
        db.commit()

    # 2. Prepare the video. What Juhe would reject anyway is answered here, without an attempt.
    try:
        prepared = video.prepare(upload, keep_audio=mode == "number", require_audio=mode == "number",
                                 tools=tools)
    except (video.VideoRejected, video.VideoToolError) as problem:
        # Refused as Juhe would refuse it, or our ffmpeg failed: either way no attempt is used.
        if isinstance(problem, video.VideoRejected):
            log.info("session %s: upload rejected locally: %s (%s)", session_id, problem.code, problem.detail)
            key = problem.code
        else:
            log.error("session %s: video processing failed: %s", session_id, problem.reason)
            key = "video_processing_failed"
        with store.session() as db:
            session = _load(db, settings, page_token)
            sessions.release_challenge(db.get(Challenge, challenge_id))
            db.commit()
            return Outcome("rejected", guidance_for(key), session.status, session.attempts_left,
                           challenge_id)

    # 3. Record the attempt before the paid call, so it exists whatever happens next.
    with store.session() as db:
        attempt = Attempt(session_id=session_id, challenge_id=challenge_id, state="processing",
                          started_at=utcnow(), counts=True,
                          video_json=json.dumps(_video_summary(prepared)))
        db.add(attempt)
        db.commit()
        attempt_id = attempt.id

    # 4. Ask Juhe. Exactly one paid request per attempt: the client never re-sends a body.
    juhe_started = time.monotonic()
    answer: JuheResult | JuheError
    try:
        answer = client.verify(VerifyRequest(video=prepared.data, **request_fields))
    except JuheError as error:
        answer = error
    juhe_seconds = time.monotonic() - juhe_started

    # 5. Record what came back and decide the session's fate.
    with store.session() as db:
        session = _load(db, settings, page_token, refresh=False)
        attempt = db.get(Attempt, attempt_id)
        guidance = _record(attempt, answer, session.pass_score)
        attempt.timings_json = json.dumps({**prepared.timings, "juhe": round(juhe_seconds, 3),
                                           "total": round(time.monotonic() - started, 3)})
        sessions.release_challenge(db.get(Challenge, challenge_id))
        db.flush()
        if attempt.outcome == "0":
            sessions.finish(db, session, "passed")
        elif guidance.final or session.attempts_left <= 0:
            sessions.finish(db, session, "failed")
        db.commit()
        status, left = session.status, session.attempts_left
    log.info("session %s attempt %s: outcome=%s score=%s charged=%s status=%s",
             session_id, attempt_id, attempt.outcome, attempt.score, attempt.charged, status)
    if status in ("passed", "failed") and on_finished:
        on_finished(session_id)

    # 6. Tell the person.
    result = {"passed": "passed", "failed": "failed"}.get(status, "retry")
    return Outcome(result, guidance, status, left if status == "pending" else 0, challenge_id,
                   score=attempt.score)


def _load(db, settings: Settings, page_token: str, refresh: bool = True):
    session = find_session(db, token=page_token)
    if session is None:
        raise sessions.SessionStateError("not_found", 404, "Unknown verification link.",
                                         "链接无效，请回到原来的页面重新发起。")
    return sessions.refresh(db, settings, session) if refresh else session


def _record(attempt: Attempt, answer: JuheResult | JuheError, pass_score: float) -> Guidance:
    """Fill the attempt from Juhe's answer (or failure) and return the guidance that applies."""
    attempt.state, attempt.finished_at = "done", utcnow()
    if isinstance(answer, JuheResult):
        attempt.error_code, attempt.reason = answer.error_code, answer.reason
        attempt.score, attempt.orderid, attempt.charged = answer.score, answer.orderid, answer.charged
        frames = ([answer.best_base64] if answer.best_base64 else []) + list(answer.best_list)
        attempt.best_frames_json = json.dumps(frames) if frames else None
        if answer.error_code == 0 and not answer.passed(pass_score):
            key: int | str = "low_score"
        else:
            key = answer.error_code
    else:
        attempt.error_code, attempt.reason = answer.error_code, answer.reason
        # An answer that never came may still have been charged: we cannot know.
        attempt.charged = None if answer.reached and answer.error_code is None else False
        key = answer.error_code if answer.kind == "system" and answer.error_code else {
            "timeout": "juhe_timeout", "connection": "juhe_unreachable"}.get(answer.kind, "juhe_invalid_response")
    guidance = guidance_for(key)
    attempt.outcome = str(key)
    attempt.counts = guidance.counts
    return guidance


def attempt_guidance(attempt: Attempt) -> Guidance:
    """The guidance recorded for a finished attempt (its outcome is a code or a name)."""
    key = attempt.outcome or ""
    return guidance_for(int(key) if key.isdigit() else key)


def _video_summary(prepared: video.PreparedVideo) -> dict:
    """What the operator may see of a video: formats and sizes, never content or metadata."""
    src, out = prepared.source, prepared.output
    return {"source": {"container": src.container, "video_codec": src.video_codec,
                       "audio_codec": src.audio_codec, "width": src.width, "height": src.height,
                       "duration": src.duration, "bytes": src.size_bytes},
            "sent": {"width": out.width, "height": out.height, "duration": out.duration,
                     "bytes": len(prepared.data), "audio": out.audio_codec is not None},
            "remuxed": prepared.remuxed}
