"""A verification session's life: created, challenged, attempted, ended.

Shared by the operator API, the pages and the workers, so all see the same rules: which
attempts count, when a session is over, when an attempt's process is taken to have died
(its lease: webapp/lease.py). What the operator reads of a session: webapp/operator_view.py;
retention: webapp/retention.py. Flask-free.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete
from sqlalchemy.orm import Session

from . import challenges, clients, page_checks, risk_signals
from .identity import Identity
from .lease import LEASE_SECONDS, owner
from .settings import Settings
from .storage import (
    Attempt,
    Challenge,
    QueuedVideo,
    VerificationSession,
    lock_session,
    precise_utcnow,
    read_session,
    utcnow,
)
from .vocabulary import AttemptState, Mode, SessionStatus

log = logging.getLogger(__name__)


# A queued attempt (waiting for a Celery worker) that no worker took in this long is released:
# longer than the broker's redelivery of a dead worker's tasks (CELERY_VISIBILITY_SECONDS).
QUEUE_SECONDS = 180.0
INTERRUPTED = "service_interrupted"  # the guidance key a released attempt is given


class SessionStateError(Exception):
    """The session cannot take this step now. `code` is machine-readable, `status` an HTTP status."""

    def __init__(self, code: str, status: int, message: str, message_zh: str):
        super().__init__(message)
        self.code, self.status, self.message, self.message_zh = code, status, message, message_zh


@dataclass(frozen=True)
class NewSession:
    """What the creator of a session needs beyond the identity."""

    mode: str
    reference: str | None = None
    return_url: str | None = None
    callback_url: str | None = None
    embed_origin: str | None = None
    best_frames: int = 0
    action_fallback: bool | None = None  # None: the ACTION_FALLBACK setting
    locale: str | None = None  # the page's language, "zh" or "en"; None: the person's


def operator_fingerprint(key: str) -> str:
    """A short, non-reversible name for an operator key, stored with its sessions."""
    return "op_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def create(db: Session, settings: Settings, identity: Identity, new: NewSession, operator: str) -> VerificationSession:
    """Store a new pending session; `random` mode is resolved here, once. Its creation time keeps
    microseconds so two sessions made in one second still list newest first."""
    now = precise_utcnow()
    session = VerificationSession(
        id="ses_" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y"),
        page_token=secrets.token_urlsafe(32), operator=operator,
        realname=identity.realname, idcard=identity.idcard,
        realname_masked=identity.masked["realname"], idcard_masked=identity.masked["idcard"],
        mode=challenges.resolve_mode(new.mode), status=SessionStatus.PENDING, reference=new.reference,
        return_url=new.return_url, callback_url=new.callback_url, embed_origin=new.embed_origin,
        best_frames=new.best_frames, locale=new.locale, max_attempts=settings.MAX_ATTEMPTS,
        action_fallback=settings.ACTION_FALLBACK if new.action_fallback is None else new.action_fallback,
        pass_score=settings.PASS_SCORE, sandbox=settings.sandbox, created_at=now,
        expires_at=now + dt.timedelta(seconds=settings.SESSION_TTL))
    db.add(session)
    return session


def refresh(db: Session, settings: Settings, session: VerificationSession,
            now: dt.datetime | None = None) -> VerificationSession:
    """Bring a (locked) session up to date with the clock: release attempts whose process died,
    expire the session once its time is up and nothing is in flight."""
    now = now or utcnow()
    for attempt in session.attempts:
        if _lease_over(attempt, now):
            release(attempt, now)
            db.execute(delete(QueuedVideo).where(QueuedVideo.attempt_id == attempt.id))
    if _time_up(session, now):
        finish(session, SessionStatus.EXPIRED)
    return session


def read_fresh(db: Session, settings: Settings, *, id: str | None = None,
               token: str | None = None) -> VerificationSession | None:
    """The session with this id or page token as it stands now, read without a write lock: one
    statement, and only when `refresh` would change it (a lease ran out, or its time is up) is it
    locked and brought up to date. What every read (the page, its state, the operator's GET)
    uses; whoever changes the session locks it (storage.lock_session). The caller commits."""
    session = read_session(db, id=id, token=token)
    return None if session is None else _up_to_date(db, settings, session)


def brought_up_to_date(db: Session, settings: Settings,
                       found: list[VerificationSession]) -> list[VerificationSession]:
    """Sessions read without locks (a list), each locked and refreshed only where `refresh`
    would change it; one purged meanwhile is left out. The caller commits."""
    return [fresh for session in found if (fresh := _up_to_date(db, settings, session)) is not None]


def _up_to_date(db: Session, settings: Settings, session: VerificationSession) -> VerificationSession | None:
    """A session read without a lock, locked and refreshed only if `refresh` would change it
    (None: purged meanwhile)."""
    if not needs_refresh(session):
        return session
    locked = lock_session(db, id=session.id)
    return None if locked is None else refresh(db, settings, locked)


def needs_refresh(session: VerificationSession, now: dt.datetime | None = None) -> bool:
    """Whether `refresh` would change this session now (then it must be locked and refreshed)."""
    now = now or utcnow()
    return any(_lease_over(a, now) for a in session.attempts) or _time_up(session, now)


def _lease_over(attempt: Attempt, now: dt.datetime) -> bool:
    return attempt.in_flight and (attempt.lease_until is None or attempt.lease_until < now)


def _time_up(session: VerificationSession, now: dt.datetime) -> bool:
    return session.status == SessionStatus.PENDING and session.is_expired(now) and not session.in_flight


def release(attempt: Attempt, now: dt.datetime, why: str | None = None) -> None:
    """An attempt whose process stopped (or `why` else it ends): nothing was sent (abandoned,
    not listed), or it was sent and its answer never recorded (listed, charge unknown).
    Neither counts."""
    sent = attempt.state == AttemptState.SENDING
    attempt.state, attempt.finished_at = (AttemptState.DONE if sent else AttemptState.ABANDONED), now
    attempt.outcome, attempt.counts, attempt.charged = INTERRUPTED, False, (None if sent else False)
    attempt.reason = why or ("the process handling this attempt stopped after sending it to Juhe; "
                             "Juhe's answer was never recorded" if sent else
                             "the process handling this upload stopped before anything was sent to Juhe")
    if attempt.owner:
        log.warning("attempt %s of session %s released: its process %s stopped (%s)",
                    attempt.id, attempt.session_id, attempt.owner, attempt.state)


def require_open(session: VerificationSession) -> None:
    """Raise unless the session can take another upload."""
    if session.status == SessionStatus.EXPIRED:
        raise SessionStateError("session_expired", 410, "This verification link has expired.",
                                "本次核验链接已过期，请回到原来的页面重新发起。")
    if session.status != SessionStatus.PENDING:
        raise SessionStateError("session_closed", 409, "This verification is already finished.",
                                "本次核验已经结束。")
    if session.attempts_left <= 0:
        raise SessionStateError("no_attempts_left", 409, "No attempts are left.",
                                "本次核验的次数已用完。")
    if session.in_flight:
        raise SessionStateError("in_flight", 409, "A video is being verified; wait for its result.",
                                "正在核验上一段视频，请稍候。")


def open_challenge(session: VerificationSession, now: dt.datetime | None = None) -> Challenge | None:
    """The one challenge the next upload may use (there is never more than one)."""
    now = now or utcnow()
    return next((c for c in reversed(session.challenges) if c.is_open(now)), None)


# Why a number-mode session became an action-mode one (the page says which).
MODE_CHANGE_REASONS = ("microphone_refused", "microphone_silent")


def switch_to_action(db: Session, settings: Settings, session: VerificationSession,
                     reason: str) -> Challenge:
    """Number mode → action mode, where the session allows it (action_fallback): the person's
    microphone is refused or hears nothing, and opening the mouth and closing the eyes need none.
    Recorded for the operator (mode_change); the first action challenge replaces the digits.
    The session must be locked."""
    require_open(session)
    if session.mode != Mode.NUMBER or not session.action_fallback:
        raise SessionStateError("mode_fixed", 409, "This session's mode cannot be changed.",
                                "本次核验不能改用其他方式。")
    session.requested_mode, session.mode = session.mode, Mode.ACTION
    session.mode_changed_at, session.mode_change_reason = utcnow(), reason
    log.info("session %s: number mode became action mode (%s)", session.id, reason)
    return issue_challenge(db, settings, session)


def issue_challenge(db: Session, settings: Settings, session: VerificationSession) -> Challenge:
    """Draw the challenge for the session's next attempt; it supersedes any open one. The
    session must be locked (storage.lock_session), so two tabs cannot both hold one."""
    require_open(session)
    now = utcnow()
    previous = None
    for old in session.challenges:
        if old.is_open(now):
            old.finished_at = now  # replaced: its expires_at stays what it was told
        previous = old.validate_data
    drawn = challenges.draw(session.mode, previous=previous)
    challenge = Challenge(id="ch_" + secrets.token_urlsafe(12), session=session, mode=drawn.mode,
                          validate_data=drawn.validate_data, issued_at=now,
                          expires_at=min(now + dt.timedelta(seconds=settings.CHALLENGE_TTL),
                                         session.expires_at))
    db.add(challenge)
    return challenge


def start_attempt(db: Session, session: VerificationSession, challenge_id: str,
                  device: clients.Client | None = None, checks: str | None = None,
                  signals: str | None = None) -> tuple[Challenge, Attempt]:
    """Use the session's open challenge for a new attempt, in flight under this process's lease.
    The session must be locked and open (require_open): the claim, the in-flight check and
    the session's end are decided under the same lock. `checks`: the page's own check of the
    recording as it sent it (webapp.page_checks reads it against the challenge's mode);
    `signals`: what the page noticed (webapp.risk_signals), to which the server adds its own."""
    now = utcnow()
    noticed = risk_signals.parse(signals)
    changed = risk_signals.client_changed(((a.browser, a.os) for a in session.attempts),
                                          device.browser if device else None, device.os if device else None)
    if changed is not None:
        noticed.append(changed)
    challenge = open_challenge(session, now)
    if challenge is None or challenge.id != challenge_id:
        raise SessionStateError("challenge_invalid", 409,
                                "This challenge is used or expired; draw a new one.",
                                "本次动作/数字已失效，请重新录制。")
    challenge.used_at = challenge.finished_at = now
    attempt = Attempt(session=session, challenge_id=challenge.id, state=AttemptState.PREPARING, started_at=now,
                      counts=True, owner=owner(),
                      lease_until=now + dt.timedelta(seconds=LEASE_SECONDS),
                      browser=device.browser if device else None, os=device.os if device else None,
                      page_checks_json=page_checks.dumps(page_checks.parse(checks, challenge.mode)),
                      signals_json=risk_signals.dumps(noticed))
    db.add(attempt)
    return challenge, attempt


def queue(attempt: Attempt) -> None:
    """Hand a prepared attempt to the queue: no process owns it until a worker takes it; if no
    worker does within QUEUE_SECONDS (broker lost), it is released (nothing was sent)."""
    attempt.state, attempt.owner = AttemptState.QUEUED, None
    attempt.lease_until = utcnow() + dt.timedelta(seconds=QUEUE_SECONDS)


def take(attempt: Attempt) -> None:
    """A worker takes a queued attempt: it is this process's now, under a fresh lease."""
    attempt.owner = owner()
    attempt.lease_until = utcnow() + dt.timedelta(seconds=LEASE_SECONDS)


def finish(session: VerificationSession, status: SessionStatus) -> bool:
    """End a pending session: passed, failed or expired. A session ends once: an ended one is
    left as it is (False). The clear identity is no longer needed. (Who ends it with a verdict
    queues the webhook in the same transaction: webapp/verification.py.)"""
    if session.status != SessionStatus.PENDING:
        return False
    session.status = status
    session.completed_at = utcnow()
    session.forget_identity()
    return True


def with_session_id(url: str, session_id: str) -> str:
    """`return_url` with `session_id` added to its query."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("session_id", session_id)]
    return urlunsplit(parts._replace(query=urlencode(query)))


