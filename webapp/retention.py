"""Retention and housekeeping: what the background loop (app.start_background) and `flask purge`
run now and then. Flask-free.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from . import best_frames
from .sessions import refresh
from .settings import Settings
from .storage import Attempt, QueuedVideo, VerificationSession, affected, lock_session, utcnow
from .vocabulary import IN_FLIGHT, SessionStatus


def housekeeping(db: Session, settings: Settings, now: dt.datetime | None = None) -> dict[str, int]:
    """Release attempts whose process died, expire overdue sessions (forgetting their
    identities), purge best frames older than BEST_FRAMES_RETENTION, and delete finished
    sessions with their attempts and webhook logs once RETENTION_DAYS have passed."""
    now = now or utcnow()
    overdue = set(db.scalars(select(VerificationSession.id).where(
        VerificationSession.status == SessionStatus.PENDING, VerificationSession.expires_at <= now)))
    overdue |= set(db.scalars(select(Attempt.session_id).where(
        Attempt.state.in_(IN_FLIGHT), Attempt.lease_until < now)))
    expired = 0
    for session_id in sorted(overdue):
        session = lock_session(db, id=session_id)
        if session is not None:
            expired += refresh(db, settings, session, now).status == SessionStatus.EXPIRED
    # A stored video whose attempt is over (its process died before deleting it) goes too.
    db.execute(delete(QueuedVideo).where(QueuedVideo.attempt_id.in_(
        select(Attempt.id).where(Attempt.state.not_in(IN_FLIGHT)))))
    # Any session no longer pending keeps only the masked identity, whatever path ended it.
    db.execute(update(VerificationSession).where(
        VerificationSession.status != SessionStatus.PENDING, VerificationSession.idcard.is_not(None))
        .values(idcard=None, realname=None))
    frames = best_frames.purge(db, settings, now)
    cutoff = now - dt.timedelta(days=settings.RETENTION_DAYS)
    purged = affected(db, delete(VerificationSession).where(
        VerificationSession.status != SessionStatus.PENDING,
        func.coalesce(VerificationSession.completed_at, VerificationSession.expires_at) < cutoff))
    db.commit()
    return {"expired": expired, "purged": purged, "best_frames": frames}
