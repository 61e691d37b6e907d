"""What the capture page is told: the state it draws itself from, and the wait for a verdict.

Flask-free. `current` is GET /v/<token>/state: the session read without a lock (sessions.read_fresh), and,
when the page asks to wait, held until the attempt in flight is settled (webapp/delivery/wakeups.py), its lease runs out
or the wait is over, whichever comes first.
"""
from __future__ import annotations

import datetime as dt
import time

from .. import sessions
from ..challenges import describe
from ..delivery.wakeups import Wakeups
from ..outcome import last_outcome, outcome_json
from ..settings import Settings
from ..storage import Challenge, Store, VerificationSession, isoformat, utcnow
from ..vocabulary import Mode

MAX_WAIT_SECONDS = 15.0  # the page asks for this; shorter than gunicorn's graceful_timeout and any proxy's


def current(store: Store, settings: Settings, wakeups: Wakeups, token: str, wait: float = 0.0) -> dict | None:
    """The state of the session behind `token` (None: no such session). With `wait` seconds,
    an answer that would say `in_flight` is held until that changes or the wait is over."""
    deadline = time.monotonic() + (min(wait, MAX_WAIT_SECONDS) if wait > 0 else 0.0)  # (NaN: no wait)
    body, session_id, lease_ends = _read(store, settings, token)
    if body is None or not body["in_flight"] or time.monotonic() >= deadline:
        return body
    with wakeups.watch(session_id) as settled:
        while settled is not None:
            body, session_id, lease_ends = _read(store, settings, token)  # (again: it may have ended meanwhile)
            left = deadline - time.monotonic()
            if body is None or not body["in_flight"] or left <= 0:
                break
            if lease_ends is not None:  # wake when it runs out: the next read releases the attempt
                left = min(left, max((lease_ends - utcnow()).total_seconds(), 0.0) + 0.2)
            settled.wait(left)
            settled.clear()
    return body


def _read(store: Store, settings: Settings, token: str) -> tuple[dict | None, str, dt.datetime | None]:
    with store.session() as db:
        session = sessions.read_fresh(db, settings, token=token)
        if session is None:
            return None, "", None
        body = state_json(session, settings.EMBED_ORIGINS)
        db.commit()
        return body, session.id, min((a.lease_until for a in session.attempts if a.in_flight and a.lease_until),
                                     default=None)


def challenge_json(challenge: Challenge) -> dict:
    return {"id": challenge.id, "mode": challenge.mode, "expires_at": isoformat(challenge.expires_at),
            **describe(challenge.mode, challenge.validate_data)}


def state_json(session: VerificationSession, embed_origins: tuple[str, ...]) -> dict:
    """Everything the page needs to draw itself; no identity, no codes. `last`: the verdict of
    the last finished attempt, in the shape of the upload's `outcome` (webapp.outcome)."""
    open_challenge = sessions.open_challenge(session)
    last = last_outcome(session)
    return {
        "status": session.status, "mode": session.mode, "sandbox": session.sandbox,
        # the page may offer action mode when the microphone fails
        "action_fallback": session.mode == Mode.NUMBER and session.action_fallback,
        "attempts_left": session.attempts_left,
        "max_attempts": session.max_attempts, "expires_at": isoformat(session.expires_at),
        "in_flight": session.in_flight,
        "challenge": challenge_json(open_challenge) if open_challenge else None,
        "last": outcome_json(last) if last is not None else None,
        # where the page's 返回 leads: at the end, and before it for a person who declines
        "return_url": sessions.with_session_id(session.return_url, session.id) if session.return_url else None,
        "session_id": session.id,
        "message_origin": message_origin(session, embed_origins),
    }


def message_origin(session: VerificationSession, embed_origins: tuple[str, ...]) -> str | None:
    """Where the page may postMessage its result: the session's embed_origin, else the single
    EMBED_ORIGINS entry, else nowhere (never `*`)."""
    if session.embed_origin:
        return session.embed_origin
    return embed_origins[0] if len(embed_origins) == 1 else None
