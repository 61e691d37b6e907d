"""A verification session's life: created, challenged, attempted, ended; and its JSON.

Shared by the operator API and the pages, so both see the same rules: which attempts count,
when a session is over, what the operator reads.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from . import challenges, webhooks
from .identity import Identity
from .settings import Settings
from .storage import Attempt, Challenge, VerificationSession, isoformat, utcnow

def stale_after(settings: Settings) -> dt.timedelta:
    """An upload whose processing has not finished after this long was interrupted (a worker
    died): it no longer blocks the session. Longer than ffmpeg's budget plus Juhe's timeouts."""
    return dt.timedelta(seconds=settings.FFMPEG_TIMEOUT + settings.JUHE_CONNECT_TIMEOUT * 3
                        + settings.JUHE_READ_TIMEOUT + 60)


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


def operator_fingerprint(key: str) -> str:
    """A short, non-reversible name for an operator key, stored with its sessions."""
    return "op_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def create(db: Session, settings: Settings, identity: Identity, new: NewSession, operator: str) -> VerificationSession:
    """Store a new pending session; `random` mode is resolved here, once."""
    now = utcnow()
    session = VerificationSession(
        id="ses_" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y"),
        page_token=secrets.token_urlsafe(32), operator=operator,
        realname=identity.realname, idcard=identity.idcard,
        realname_masked=identity.masked["realname"], idcard_masked=identity.masked["idcard"],
        mode=challenges.resolve_mode(new.mode), status="pending", reference=new.reference,
        return_url=new.return_url, callback_url=new.callback_url, embed_origin=new.embed_origin,
        best_frames=new.best_frames, max_attempts=settings.MAX_ATTEMPTS,
        pass_score=settings.PASS_SCORE, sandbox=settings.sandbox, created_at=now,
        expires_at=now + dt.timedelta(seconds=settings.SESSION_TTL))
    db.add(session)
    return session


def refresh(db: Session, settings: Settings, session: VerificationSession) -> VerificationSession:
    """Bring a session up to date with the clock: expire it, release interrupted uploads."""
    now = utcnow()
    stale = now - stale_after(settings)
    for attempt in session.attempts:
        if attempt.state == "processing" and attempt.started_at < stale:
            attempt.state, attempt.finished_at = "done", now
            attempt.outcome, attempt.counts, attempt.charged = "interrupted", False, None
            attempt.reason = "processing was interrupted before Juhe's answer was recorded"
    for challenge in session.challenges:
        if challenge.used_at and not challenge_finished(challenge) and challenge.used_at < stale:
            challenge.expires_at = challenge.used_at  # marks it finished (see challenge_finished)
    if session.status == "pending" and session.is_expired(now) and not upload_in_progress(session):
        finish(db, session, "expired")
    return session


def challenge_finished(challenge: Challenge) -> bool:
    """A claimed challenge is finished once its upload was processed (expires_at set to used_at)."""
    return challenge.used_at is not None and challenge.expires_at <= challenge.used_at


def upload_in_progress(session: VerificationSession) -> bool:
    return any(c.used_at and not challenge_finished(c) for c in session.challenges)


def require_open(session: VerificationSession) -> None:
    """Raise unless the session can take another upload."""
    if session.status == "expired":
        raise SessionStateError("session_expired", 410, "This verification link has expired.",
                                "本次核验链接已过期，请回到原来的页面重新发起。")
    if session.status != "pending":
        raise SessionStateError("session_closed", 409, "This verification is already finished.",
                                "本次核验已经结束。")
    if session.attempts_left <= 0:
        raise SessionStateError("no_attempts_left", 409, "No attempts are left.",
                                "本次核验的次数已用完。")
    if upload_in_progress(session):
        raise SessionStateError("busy", 409, "A video is being verified; wait for its result.",
                                "正在核验上一段视频，请稍候。")


def issue_challenge(db: Session, settings: Settings, session: VerificationSession) -> Challenge:
    """Draw a new challenge for the session's next attempt; earlier open ones stop being valid."""
    require_open(session)
    now = utcnow()
    previous = None
    for old in session.challenges:
        if old.used_at is None and old.expires_at > now:
            old.expires_at = now
        previous = old.validate_data
    drawn = challenges.draw(session.mode, previous=previous)
    challenge = Challenge(id="ch_" + secrets.token_urlsafe(12), session=session, mode=drawn.mode,
                          validate_data=drawn.validate_data, issued_at=now,
                          expires_at=min(now + dt.timedelta(seconds=settings.CHALLENGE_TTL),
                                         session.expires_at))
    db.add(challenge)
    return challenge


def claim_challenge(db: Session, session: VerificationSession, challenge_id: str) -> Challenge:
    """Use a challenge once: atomically mark it used, or raise if it is unknown, used or expired."""
    now = utcnow()
    claimed = db.execute(
        update(Challenge)
        .where(Challenge.id == challenge_id, Challenge.session_id == session.id,
               Challenge.used_at.is_(None), Challenge.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        raise SessionStateError("challenge_invalid", 409,
                                "This challenge is used or expired; draw a new one.",
                                "本次动作/数字已失效，请重新录制。")
    challenge = db.get(Challenge, challenge_id)
    db.refresh(challenge)
    return challenge


def release_challenge(challenge: Challenge) -> None:
    """The upload made with this challenge is processed: it no longer blocks the session."""
    challenge.expires_at = challenge.used_at


def finish(db: Session, session: VerificationSession, status: str) -> None:
    """End the session: passed, failed or expired. The clear identity is no longer needed; a
    passed or failed session with a callback_url gets its webhook queued in the same transaction."""
    session.status = status
    session.completed_at = utcnow()
    session.forget_identity()
    if session.callback_url and status in ("passed", "failed"):
        webhooks.enqueue(db, session.id, session.callback_url, session_json(session))


def with_session_id(url: str, session_id: str) -> str:
    """`return_url` with `session_id` added to its query."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("session_id", session_id)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def attempt_json(attempt: Attempt) -> dict:
    return {"at": isoformat(attempt.started_at), "error_code": attempt.error_code,
            "reason": attempt.reason, "score": attempt.score, "orderid": attempt.orderid,
            "charged": attempt.charged}


def session_json(session: VerificationSession) -> dict:
    """The operator's view of a session (GET /api/v1/sessions/<id>, webhooks). Identity masked."""
    listed = [a for a in session.attempts if a.state == "done"]
    last = listed[-1] if listed else None
    body = {
        "id": session.id, "status": session.status, "mode": session.mode,
        "reference": session.reference,
        "score": last.score if last else None, "pass_score": session.pass_score,
        "error_code": last.error_code if last else None, "reason": last.reason if last else None,
        "orderid": last.orderid if last else None,
        "attempts": [attempt_json(a) for a in listed],
        "attempts_left": session.attempts_left if session.status == "pending" else 0,
        "max_attempts": session.max_attempts,
        "identity": {"realname": session.realname_masked, "idcard": session.idcard_masked},
        "created_at": isoformat(session.created_at), "expires_at": isoformat(session.expires_at),
        "completed_at": isoformat(session.completed_at),
        "sandbox": session.sandbox,
    }
    if session.best_frames:
        passed = [a for a in listed if a.best_frames]
        body["best_frames"] = passed[-1].best_frames if passed else []
    return body


def housekeeping(db: Session, settings: Settings, now: dt.datetime | None = None) -> dict[str, int]:
    """Expire overdue sessions (forgetting their identities) and delete finished sessions, with
    their attempts, best frames and webhook logs, once RETENTION_DAYS have passed."""
    now = now or utcnow()
    overdue = db.scalars(select(VerificationSession).where(
        VerificationSession.status == "pending", VerificationSession.expires_at <= now)).all()
    expired = sum(refresh(db, settings, s).status == "expired" for s in overdue)
    # Any session no longer pending keeps only the masked identity, whatever path ended it.
    db.execute(update(VerificationSession).where(
        VerificationSession.status != "pending", VerificationSession.idcard.is_not(None))
        .values(idcard=None, realname=None))
    cutoff = now - dt.timedelta(days=settings.RETENTION_DAYS)
    purged = db.execute(delete(VerificationSession).where(
        VerificationSession.status != "pending",
        func.coalesce(VerificationSession.completed_at, VerificationSession.expires_at) < cutoff)).rowcount
    db.commit()
    return {"expired": expired, "purged": purged}
