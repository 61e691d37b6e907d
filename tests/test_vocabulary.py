"""The one vocabulary (webapp.vocabulary): its members are the strings the database, the API and
the webhooks have always carried, and a video's verdict is named by the session's status."""
from __future__ import annotations

import json

from webapp import challenges, vocabulary
from webapp.vocabulary import AttemptState, DeliveryState, Mode, Result, SessionStatus


def test_members_are_their_strings():
    assert SessionStatus.PASSED == "passed" and "pending" == SessionStatus.PENDING
    assert json.dumps({"status": SessionStatus.EXPIRED, "result": Result.RETRY}) == \
        '{"status": "expired", "result": "retry"}'
    assert f"{Mode.NUMBER}" == "number" and str(AttemptState.DONE) == "done"
    assert [str(s) for s in DeliveryState] == ["pending", "delivered", "failed"]


def test_the_sets_are_those_the_code_has_always_used():
    assert set(SessionStatus) == {"pending", "passed", "failed", "expired"}
    assert set(AttemptState) == {"preparing", "queued", "sending", "done", "abandoned"}
    assert set(vocabulary.IN_FLIGHT) == set(AttemptState) - {"done", "abandoned"}
    assert set(Mode) == {"silent", "number", "action", "random"}
    assert set(challenges.MODES) == set(Mode) - {"random"} == set(vocabulary.LIVENESS_TYPE)
    assert set(Result) == {"passed", "failed", "retry", "rejected"}


def test_a_verdict_is_named_by_the_status_the_video_left_the_session_in():
    assert vocabulary.result_of(SessionStatus.PASSED) is Result.PASSED
    assert vocabulary.result_of("failed") is Result.FAILED
    assert vocabulary.result_of(SessionStatus.PENDING) is Result.RETRY
    assert vocabulary.result_of(SessionStatus.EXPIRED) is Result.RETRY
