"""What the operator reads of a session: GET /api/v1/sessions/<id>, the list, the console and
the webhook's body. The identity is masked; no video, frame or clear ID number is ever in it.
Flask-free.
"""
from __future__ import annotations

from . import best_frames, consent, page_events
from .storage import Attempt, VerificationSession, isoformat
from .vocabulary import AttemptState


def mode_change_json(session: VerificationSession) -> dict | None:
    """What the operator sees of a mode change (None: the mode is the one asked for)."""
    if session.requested_mode is None:
        return None
    return {"from": session.requested_mode, "to": session.mode, "reason": session.mode_change_reason,
            "at": isoformat(session.mode_changed_at)}


def attempt_json(attempt: Attempt) -> dict:
    body: dict[str, object] = {"at": isoformat(attempt.started_at), "error_code": attempt.error_code,
            "reason": attempt.reason, "score": attempt.score, "orderid": attempt.orderid,
            "charged": attempt.charged}
    if attempt.video:
        body["video"] = attempt.video_report
    body["page_checks"] = attempt.page_checks
    body["signals"] = attempt.signals
    return body


def session_json(session: VerificationSession) -> dict:
    """The operator's view of a session (GET /api/v1/sessions/<id>, webhooks). Identity masked."""
    listed = [a for a in session.attempts if a.state == AttemptState.DONE]
    last = listed[-1] if listed else None
    body = {
        "id": session.id, "status": session.status, "mode": session.mode,
        "action_fallback": session.action_fallback, "mode_change": mode_change_json(session),
        "reference": session.reference, "locale": session.locale,
        "score": last.score if last else None, "pass_score": session.pass_score,
        "error_code": last.error_code if last else None, "reason": last.reason if last else None,
        "orderid": last.orderid if last else None,
        "attempts": [attempt_json(a) for a in listed],
        "attempts_left": session.attempts_left,
        "max_attempts": session.max_attempts,
        "identity": {"realname": session.realname_masked, "idcard": session.idcard_masked},
        "created_at": isoformat(session.created_at), "expires_at": isoformat(session.expires_at),
        "completed_at": isoformat(session.completed_at),
        "sandbox": session.sandbox,
        "consent": consent.receipt(session),
        "events": [page_events.event_json(e) for e in session.events],
    }
    if session.best_frames:
        body["best_frames"] = best_frames.summary(session)  # whether they exist, never the frames
    return body
