"""What became of one video, as the person and the operator are told it: made once, one shape.

An `Outcome` is decided where the video's path ends (webapp/verification.py: passed, failed,
record again, or rejected before Juhe), or read back from the session's last finished attempt
when the page asks later (`last_outcome`: a Celery worker had the video, or the page reloaded).
`outcome_json` is the one JSON of it: the upload's `outcome`, the page state's `last`, and the
operator API's `outcome` (which adds Juhe's code, the score and the operator's words).
"""
from __future__ import annotations

from dataclasses import dataclass

from .guidance import Guidance, guidance_for
from .storage import Attempt, VerificationSession
from .vocabulary import AttemptState, Result, SessionStatus, result_of


@dataclass(frozen=True)
class Outcome:
    """One video's verdict and where it left the session."""

    result: Result
    guidance: Guidance
    session_status: str
    attempts_left: int
    challenge_id: str
    score: float | None = None


def after(session: VerificationSession, guidance: Guidance, challenge_id: str, *,
          score: float | None = None, rejected: bool = False) -> Outcome:
    """The outcome of a video as the session stands after it: `rejected` (refused before Juhe,
    no attempt used), else what the session's status says (passed, failed, else record again)."""
    result = Result.REJECTED if rejected else result_of(session.status)
    return Outcome(result, guidance, session.status, session.attempts_left, challenge_id, score)


def attempt_guidance(attempt: Attempt) -> Guidance:
    """The guidance recorded for a finished attempt (its outcome is a code or a name)."""
    key = attempt.outcome or ""
    return guidance_for(int(key) if key.isdigit() else key)


def last_outcome(session: VerificationSession) -> Outcome | None:
    """The outcome of the session's last finished attempt (None: none finished yet)."""
    ended = [a for a in session.attempts if a.state in (AttemptState.DONE, AttemptState.ABANDONED)]
    if not ended:
        return None
    return after(session, attempt_guidance(ended[-1]), ended[-1].challenge_id, score=ended[-1].score)


def outcome_json(outcome: Outcome, *, operator: bool = False, detail: str | None = None) -> dict:
    """The outcome as JSON. For the person: words to act on, never raw codes. For the operator
    (`operator=True`), the same with Juhe's code, the score, what the operator should know and
    `detail` (why a video_url was not fetched)."""
    g = outcome.guidance
    body: dict = {"result": outcome.result, "message": g.person_zh, "message_en": g.person_en,
                  # the problem in a few words ("太暗"), which the page names once the attempts are used up
                  "problem": g.problem_zh, "problem_en": g.problem_en,
                  "category": str(g.category), "final": g.final,
                  "retry": outcome.session_status == SessionStatus.PENDING,
                  "attempts_left": outcome.attempts_left, "challenge_id": outcome.challenge_id,
                  "recording_broken": g.recording_broken}
    if operator:
        body.update({"code": str(g.code), "score": outcome.score, "operator": g.operator})
        if detail:
            body["detail"] = detail
    return body
