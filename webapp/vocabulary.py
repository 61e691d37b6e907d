"""The words the service's state is spoken in: a session's status, an attempt's state, a webhook
delivery's state, a challenge's mode, and what became of one video.

One place for each set, so that a newcomer finds every value (and a typo is a NameError, not a
state nobody handles). They are StrEnums: a member *is* its string (`SessionStatus.PASSED ==
"passed"`), so the database columns stay plain strings and the API's and webhooks' JSON is
unchanged; what the database hands back (a plain str) compares equal to the members.
"""
from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class SessionStatus(StrEnum):
    """`sessions.status`: pending until it ends, once, as passed, failed or expired."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    EXPIRED = "expired"


ENDED_WITH_EVENT = (SessionStatus.PASSED, SessionStatus.FAILED)  # the ends a webhook tells of


class AttemptState(StrEnum):
    """`attempts.state`: preparing (this process normalises the video) → [queued (waiting for
    a Celery worker) →] sending (the paid call) → done; released before sending: abandoned."""

    PREPARING = "preparing"
    QUEUED = "queued"
    SENDING = "sending"
    DONE = "done"
    ABANDONED = "abandoned"


# An attempt in flight: a video being prepared, queued or sent; the session takes no other upload
# meanwhile (the page's `in_flight`, the API's 409 `in_flight`).
IN_FLIGHT = (AttemptState.PREPARING, AttemptState.QUEUED, AttemptState.SENDING)


class DeliveryState(StrEnum):
    """`webhook_deliveries.state`: pending (due or retrying), then delivered or failed (tries used up)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Mode(StrEnum):
    """A session's mode (the operator's `mode`, `LIVENESS_MODE`). `random` is resolved to one
    of the others when the session is created; a challenge's mode is never random."""

    SILENT = "silent"      # livenessType 0: look at the camera
    NUMBER = "number"      # livenessType 1: read four digits aloud (the video keeps its sound)
    ACTION = "action"      # livenessType 2: two actions in the order shown
    RANDOM = "random"


CHALLENGE_MODES = (Mode.SILENT, Mode.NUMBER, Mode.ACTION)
LIVENESS_TYPE: Mapping[str, int] = {Mode.SILENT: 0, Mode.NUMBER: 1, Mode.ACTION: 2}  # Juhe's livenessType


class Result(StrEnum):
    """What became of one video, as the page and the operator's `outcome.result` say it."""

    PASSED = "passed"
    FAILED = "failed"
    RETRY = "retry"        # the session is still pending: record again
    REJECTED = "rejected"  # refused before Juhe (as Juhe would have): no attempt used


def result_of(status: str) -> Result:
    """What a video's verdict is called by the session's status after it: passed or failed when
    it ended the session, else record again (an expired session included: its page says so)."""
    ended: dict[str, Result] = {SessionStatus.PASSED: Result.PASSED, SessionStatus.FAILED: Result.FAILED}
    return ended.get(status, Result.RETRY)
