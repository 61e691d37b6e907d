"""One video's path, top to bottom: from an uploaded file to Juhe's verdict, recorded and explained.

    claim the challenge and start the attempt → prepare the video (probe, check, normalise) →
    [queue it for a Celery worker →] mark the attempt as sending → call Juhe → record what Juhe
    said, end the session when nothing more can pass and queue its webhook → tell the person
    what to do next

Every step that reads and changes the session holds its lock (storage.lock_session), so racing
tabs cannot both claim, and a session that ended never ends again. While the attempt is in
flight this process keeps its lease fresh (webapp/lease.py); if the process dies the lease lapses
and the session is usable again within seconds, and if this process loses the lease it stops
before it could pay for a call the session no longer expects. Each step commits before the next
starts, so a browser that disconnects while Juhe is answering loses nothing. A video that fails
the local checks never reaches Juhe and is not an attempt.

`Verifier` is the path as the app runs it, made once (app.build_services): the page's upload,
the operator's video and a Celery worker's task all go through it.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from . import best_frames, clients, metrics, outages, sessions, uploads, video
from .delivery import webhooks
from .guidance import LOW_SCORE, Guidance, guidance_for, guidance_key
from .juhe.client import JuheClient, JuheError, JuheResult, VerifyRequest
from .lease import LEASE_SECONDS, Lease, owner
from .operator_view import session_json
from .outcome import Outcome, after
from .settings import Settings
from .storage import (
    Attempt,
    Challenge,
    QueuedVideo,
    Store,
    VerificationSession,
    lock_session,
    utcnow,
)
from .vocabulary import AttemptState, Mode, SessionStatus

log = logging.getLogger(__name__)

# How long a worker waits for a database that is away to take a queued attempt; longer, and the
# task gives up and the attempt's queue lease (sessions.QUEUE_SECONDS) gives the session back.
TAKE_PATIENCE_SECONDS = 120.0

Normalise = Callable[[Path, str, Path], video.PreparedVideo]
"""(upload, the session's mode, a scratch folder) → the MP4 to send; raises video.VideoRejected
for what Juhe would refuse, video.VideoToolError when ffmpeg cannot run."""


def ffmpeg_normaliser(tools: video.Tools) -> Normalise:
    """The normaliser of a running service: ffmpeg (webapp/video), keeping the sound, and
    requiring it, in number mode only (Juhe listens for the digits)."""
    def normalise(upload: Path, mode: str, scratch: Path) -> video.PreparedVideo:
        number = mode == Mode.NUMBER
        return video.prepare(upload, keep_audio=number, require_audio=number,
                             tools=dataclasses.replace(tools, tmpdir=str(scratch)))
    return normalise


@dataclass(frozen=True)
class Verifier:
    """Everything one video's path needs, made once per process. `enqueue(attempt_id)` hands a
    prepared video to a Celery worker (None: no broker, this process sends it);
    `on_finished(session_id)` follows a session that ended with a webhook to deliver."""

    store: Store
    settings: Settings
    client: JuheClient
    normalise: Normalise
    folder: Path  # uploads live here while they are verified (webapp/uploads.py)
    enqueue: Callable[[int], None] | None = None
    on_finished: Callable[[str], None] | None = None

    def verify(self, page_token: str, challenge_id: str, save: Callable[[Path], None], *,
               device: clients.Client | None = None, page_checks: str | None = None,
               signals: str | None = None) -> Outcome | None:
        """An upload, saved by `save(path)` into a folder of its own (removed afterwards, what
        ever happens), run through the whole path (`verify_upload`). What `save` raises goes
        through unchanged, before anything is claimed."""
        with uploads.workspace(self.folder) as scratch:
            path = scratch / "upload"
            save(path)
            return verify_upload(self, page_token, challenge_id, path, scratch, device=device,
                                 page_checks=page_checks, signals=signals)


def verify_upload(v: Verifier, page_token: str, challenge_id: str, upload: Path, scratch: Path, *,
                  device: clients.Client | None = None, page_checks: str | None = None,
                  signals: str | None = None) -> Outcome | None:
    """Run one uploaded video through the whole path. Raises sessions.SessionStateError when the
    session cannot take an upload (closed, expired, in flight, challenge used or expired).

    With a broker (`v.enqueue`), the prepared video is stored and a worker does the rest
    (`run_queued`); None is returned and the page follows the session's state. `device`: the
    browser family and OS, kept on the attempt; `page_checks`: what the capture page's own check
    saw (the `checks` field), kept on it too, as are `signals` (webapp.risk_signals).
    """
    started = time.monotonic()

    # 1. Claim the challenge and start the attempt, under the session's lock.
    with v.store.session() as db:
        session = _lock(db, v.settings, page_token)
        sessions.require_open(session)
        _challenge, attempt = sessions.start_attempt(db, session, challenge_id, device, page_checks, signals)
        mode = session.mode
        db.commit()
        attempt_id = attempt.id

    with Lease(v.store, attempt_id) as lease, metrics.ATTEMPTS_IN_FLIGHT.track_inprogress():
        # 2. Prepare the video. What Juhe would reject anyway is answered here, without an attempt.
        try:
            prepared = v.normalise(upload, mode, scratch)
        except (video.VideoRejected, video.VideoToolError) as problem:
            return _not_prepared(v, page_token, attempt_id, mode, challenge_id, problem)
        metrics.FFMPEG_SECONDS.observe(prepared.timings["total"])
        summary = _video_summary(prepared)

        # 3. With a broker: store the video where every worker can read it, and hand over.
        if v.enqueue is not None:
            return _hand_over(v, page_token, attempt_id, mode, challenge_id, prepared, summary, lease)

        return _send(v, page_token, attempt_id, prepared.data, lease, expected=AttemptState.PREPARING,
                     summary=summary, timings=prepared.timings, started=started)


def _not_prepared(v: Verifier, page_token: str, attempt_id: int, mode: str, challenge_id: str,
                  problem: video.VideoRejected | video.VideoToolError) -> Outcome:
    """Step 2 failed: refused as Juhe would refuse it, or our ffmpeg failed. Either way the
    attempt is withdrawn and none is used."""
    if isinstance(problem, video.VideoRejected):
        log.info("attempt %s: upload rejected locally: %s (%s)", attempt_id, problem.code, problem.detail)
        key: int | str = problem.code
    elif isinstance(problem, video.StorageFull):
        log.error("attempt %s: storage full, video not processed: %s", attempt_id, problem.reason)
        key = "storage_full"
    else:
        log.error("attempt %s: video processing failed: %s", attempt_id, problem.reason)
        key = "video_processing_failed"
    metrics.VERIFICATIONS.labels(str(key), mode).inc()
    with v.store.session() as db:
        session = _lock(db, v.settings, page_token, refresh=False)
        db.execute(delete(Attempt).where(Attempt.id == attempt_id, Attempt.state == AttemptState.PREPARING))
        db.commit()
        if isinstance(problem, video.StorageFull):
            raise problem  # nothing counted; the app answers 503 storage_full (webapp/web/full_disk.py)
        return after(session, guidance_for(key), challenge_id, rejected=True)


def _hand_over(v: Verifier, page_token: str, attempt_id: int, mode: str, challenge_id: str,
               prepared: video.PreparedVideo, summary: dict, lease: Lease) -> Outcome | None:
    """Step 3: the prepared video stored with its attempt, queued, and the task published. A
    broker that cannot be reached releases the attempt (nothing was sent)."""
    assert v.enqueue is not None
    with v.store.session() as db:
        _lock(db, v.settings, page_token, refresh=False)
        attempt = db.get_one(Attempt, attempt_id)
        ours = attempt.state == AttemptState.PREPARING and not lease.lost.is_set()
        if ours:
            sessions.queue(attempt)
            attempt.video_json = json.dumps(summary)
            attempt.timings_json = json.dumps({**prepared.timings, "queued_at": time.time()})
            db.add(QueuedVideo(attempt_id=attempt_id, data=prepared.data))
        db.commit()
    if not ours:
        return _interrupted(v, page_token, attempt_id, mode, challenge_id)
    try:
        v.enqueue(attempt_id)
    except Exception:
        log.exception("attempt %s: could not be queued; nothing sent", attempt_id)
        with v.store.session() as db:
            _lock(db, v.settings, page_token, refresh=False)
            attempt = db.get_one(Attempt, attempt_id)
            if attempt.state == AttemptState.QUEUED:
                sessions.release(attempt, utcnow(), "the broker could not be reached; nothing was sent")
                db.execute(delete(QueuedVideo).where(QueuedVideo.attempt_id == attempt_id))
            db.commit()
        return _interrupted(v, page_token, attempt_id, mode, challenge_id)
    return None


@dataclass(frozen=True)
class _Taken:
    """A queued attempt a worker took: what it needs to send it."""

    page_token: str
    data: bytes
    timings: dict


def run_queued(v: Verifier, attempt_id: int, on_settled: Callable[[str], None] | None = None) -> Outcome | None:
    """A Celery worker's half of a queued attempt: steps 4-7 of verify_upload. A task delivered
    again after its attempt was sent (its worker died) finds it no longer queued and does
    nothing: the attempt's lease settles it as "charge unknown", never a second call.
    `on_settled(session_id)` follows whatever became of the attempt (the page's wake-up)."""
    # The database may be away when the task arrives (restarted, failed over): the task waits for
    # it, since a task that failed here would leave its attempt queued, nothing sent, until
    # sessions.QUEUE_SECONDS released it.
    session_id, taken = outages.patiently(lambda: _take(v, attempt_id),
                                          what=f"attempt {attempt_id}: taken from the queue",
                                          patience=TAKE_PATIENCE_SECONDS)
    try:
        if taken is None:
            return None
        timings = dict(taken.timings)
        queued_at = timings.pop("queued_at", None)
        if queued_at is not None:
            timings["queue"] = round(time.time() - queued_at, 3)
        with Lease(v.store, attempt_id) as lease, metrics.ATTEMPTS_IN_FLIGHT.track_inprogress():
            return _send(v, taken.page_token, attempt_id, taken.data, lease, expected=AttemptState.QUEUED,
                         summary=None, timings=timings, started=time.monotonic())
    finally:
        if on_settled is not None and session_id is not None:
            on_settled(session_id)


def _take(v: Verifier, attempt_id: int) -> tuple[str | None, _Taken | None]:
    """A worker takes a queued attempt, as one unit of work (safe to run again: taking it twice
    is taking it once): (its session's id, what to send), the latter None if it is not queued
    any more (the former too if it was purged)."""
    with v.store.session() as db:
        session_id = db.scalar(select(Attempt.session_id).where(Attempt.id == attempt_id))  # none: purged
        session = lock_session(db, id=session_id) if session_id is not None else None
        if session is None:
            return None, None
        sessions.refresh(db, v.settings, session)
        attempt = db.get(Attempt, attempt_id)  # read under the lock (most often with session.attempts)
        queued = db.get(QueuedVideo, attempt_id) if attempt is not None else None
        if attempt is None or attempt.state != AttemptState.QUEUED or queued is None:
            if attempt is not None:
                log.warning("attempt %s delivered again while %s: nothing sent", attempt_id, attempt.state)
            db.commit()
            return session.id, None
        sessions.take(attempt)
        taken = _Taken(session.page_token, queued.data, attempt.timings)
        db.commit()
        return session.id, taken


def _send(v: Verifier, page_token: str, attempt_id: int, data: bytes, lease: Lease, *,
          expected: AttemptState, summary: dict | None, timings: dict, started: float) -> Outcome:
    # 4. The attempt is about to be paid for: only while it is still ours. A database away for a
    # moment is waited for; for longer, the lease is lost meanwhile and nothing is sent.
    request, mode, challenge_id = outages.patiently(
        lambda: _mark_sending(v, page_token, attempt_id, data, lease, expected, summary),
        what=f"attempt {attempt_id}: marked as sending", patience=LEASE_SECONDS)
    if request is None:
        return _interrupted(v, page_token, attempt_id, mode, challenge_id)

    # 5. Ask Juhe. Exactly one paid request per attempt: the client never re-sends a body,
    # and gives up (closing the connection) at its deadline or when the lease is lost.
    juhe_started = time.monotonic()
    answer: JuheResult | JuheError
    try:
        answer = v.client.verify(request, abort=lease.lost)
    except JuheError as error:
        answer = error
    juhe_seconds = time.monotonic() - juhe_started
    metrics.JUHE_SECONDS.observe(juhe_seconds)

    # 6. Record what came back (on this attempt, even if it was given up meanwhile), decide the
    # session's fate once, and queue its webhook with it. A database away for a while does not
    # lose the answer: it is written again until the database is back, the attempt in flight
    # meanwhile (its lease held) and the session closed to new attempts.
    lease.hold()
    recorded = outages.patiently(
        lambda: _write_answer(v, page_token, attempt_id, answer, {
            **timings, "juhe": round(juhe_seconds, 3), "total": round(time.monotonic() - started, 3)}),
        what=f"attempt {attempt_id}: Juhe's answer")
    _count(recorded, mode)
    if recorded.webhook and v.on_finished is not None:
        v.on_finished(recorded.session.id)

    # 7. Tell the person.
    return after(recorded.session, recorded.guidance, challenge_id, score=recorded.attempt.score)


def _mark_sending(v: Verifier, page_token: str, attempt_id: int, data: bytes, lease: Lease,
                  expected: AttemptState, summary: dict | None) -> tuple[VerifyRequest | None, str, str]:
    """Step 4 as one unit of work: the attempt marked as sending and the request to Juhe made
    from the session, if the attempt is still ours; (request or None, mode, challenge id).
    Run again after its commit failed, it finds the attempt already sending and sends nothing:
    a commit cut short may have been made, and the lease then settles it."""
    with v.store.session() as db:
        session = _lock(db, v.settings, page_token, refresh=False)
        attempt = db.get_one(Attempt, attempt_id)
        mode, challenge_id = session.mode, attempt.challenge_id
        ours = attempt.state == expected and attempt.owner == owner() and not lease.lost.is_set()
        request = None
        # The identity is forgotten only when the session ends, which it cannot while this
        # attempt is in flight; were it gone, nothing could be sent.
        if ours and session.idcard is not None and session.realname is not None:
            attempt.state = AttemptState.SENDING
            if summary is not None:
                attempt.video_json = json.dumps(summary)
            challenge = db.get_one(Challenge, attempt.challenge_id)
            request = VerifyRequest(video=data, idcard=session.idcard, realname=session.realname,
                                    liveness_type=challenge.liveness_type,
                                    validate_data=challenge.validate_data,
                                    best_frame=session.best_frames == 1,
                                    best_frame_num=session.best_frames if session.best_frames >= 2 else None)
        db.commit()
        return request, mode, challenge_id


@dataclass(frozen=True)
class _Recorded:
    session: VerificationSession
    attempt: Attempt
    guidance: Guidance
    late: bool  # the attempt had been released (as "charge unknown") before the answer was written
    webhook: bool  # this answer ended the session, and its webhook was queued


def _write_answer(v: Verifier, page_token: str, attempt_id: int, answer: JuheResult | JuheError,
                  timings: dict) -> _Recorded:
    """Step 6 as one unit of work, safe to run again if the database failed under it: the
    answer on the attempt, the session ended if nothing more can pass, and then its webhook
    queued in the same transaction (an outbox: webapp/delivery/webhooks.py delivers it)."""
    with v.store.session() as db:
        session = _lock(db, v.settings, page_token, refresh=False)
        attempt = db.get_one(Attempt, attempt_id)
        late = attempt.state != AttemptState.SENDING
        guidance = _record(attempt, answer, session.pass_score)
        if isinstance(answer, JuheResult):  # sealed, and only if the session asked (best_frames.py)
            best_frames.keep(db, v.settings, session, attempt,
                             best_frames.frames_of(answer.best_base64, answer.best_list))
        attempt.timings_json = json.dumps({**timings, **({"late": True} if late else {})})
        db.execute(delete(QueuedVideo).where(QueuedVideo.attempt_id == attempt_id))
        db.flush()
        ended = False
        if attempt.outcome == "0":
            ended = sessions.finish(session, SessionStatus.PASSED)
        elif guidance.final or session.attempts_left <= 0:
            ended = sessions.finish(session, SessionStatus.FAILED)
        callback = session.callback_url if ended else None
        if callback:
            webhooks.enqueue(db, session.id, callback, session_json(session))
        db.commit()
        return _Recorded(session, attempt, guidance, late, webhook=bool(callback))


def _count(recorded: _Recorded, mode: str) -> None:
    """What one answer adds to the metrics and the log."""
    session, attempt = recorded.session, recorded.attempt
    metrics.VERIFICATIONS.labels(attempt.outcome, mode).inc()
    metrics.JUHE_CALLS.labels(metrics.charge_label(attempt.charged)).inc()
    metrics.PAGE_CHECKS.labels((attempt.page_checks or {}).get("verdict", "none"),
                               "passed" if attempt.outcome == "0" else "failed").inc()
    log.info("session %s attempt %s: outcome=%s score=%s charged=%s status=%s%s",
             session.id, attempt.id, attempt.outcome, attempt.score, attempt.charged, session.status,
             " (answer arrived after the attempt was released)" if recorded.late else "")


def _interrupted(v: Verifier, page_token: str, attempt_id: int, mode: str, challenge_id: str) -> Outcome:
    """This process lost the attempt before paying for it (its lease lapsed): nothing was sent."""
    metrics.VERIFICATIONS.labels(sessions.INTERRUPTED, mode).inc()
    log.warning("attempt %s: lease lost before sending; nothing sent", attempt_id)
    with v.store.session() as db:
        session = _lock(db, v.settings, page_token, refresh=False)
        db.commit()
        return after(session, guidance_for(sessions.INTERRUPTED), challenge_id)


def _lock(db: Session, settings: Settings, page_token: str, refresh: bool = True) -> VerificationSession:
    session = lock_session(db, token=page_token)
    if session is None:
        raise sessions.SessionStateError("not_found", 404, "Unknown verification link.",
                                         "链接无效，请回到原来的页面重新发起。")
    return sessions.refresh(db, settings, session) if refresh else session


def _record(attempt: Attempt, answer: JuheResult | JuheError, pass_score: float) -> Guidance:
    """Fill the attempt from Juhe's answer (or failure) and return the guidance that applies."""
    attempt.state, attempt.finished_at = AttemptState.DONE, utcnow()
    attempt.error_code, attempt.reason = answer.error_code, answer.reason
    if isinstance(answer, JuheResult):
        attempt.score, attempt.orderid, attempt.charged = answer.score, answer.orderid, answer.charged
    else:
        # An answer that never came may still have been charged: we cannot know.
        attempt.charged = None if answer.reached and answer.error_code is None else False
    key = guidance_key(answer, pass_score)
    guidance = guidance_for(key)
    if key == LOW_SCORE:  # Juhe said 成功 of the call; the operator reads why the session failed
        attempt.reason = guidance.meaning
    attempt.outcome = str(key)
    attempt.counts = guidance.counts
    return guidance


def _video_summary(prepared: video.PreparedVideo) -> dict:
    """What the operator may see of a video: formats and sizes, never content or metadata."""
    src, out = prepared.source, prepared.output
    return {"source": {"container": src.container, "video_codec": src.video_codec,
                       "audio_codec": src.audio_codec, "width": src.width, "height": src.height,
                       "duration": src.duration, "bytes": src.size_bytes},
            "sent": {"width": out.width, "height": out.height, "duration": out.duration,
                     "bytes": len(prepared.data), "audio": out.audio_codec is not None},
            "remuxed": prepared.remuxed}
