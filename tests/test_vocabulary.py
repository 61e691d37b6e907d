"""The one vocabulary (webapp.vocabulary): its members are the strings the database, the API and
the webhooks have always carried, and the page can be given them as plain JSON."""
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
    assert set(AttemptState) == {"preparing", "queued", "sending", "processing", "done", "abandoned"}
    assert set(vocabulary.IN_FLIGHT) == set(AttemptState) - {"done", "abandoned"}
    assert set(Mode) == {"silent", "number", "action", "random"}
    assert set(challenges.MODES) == set(Mode) - {"random"} == set(challenges.LIVENESS_TYPE)
    assert set(Result) == {"passed", "failed", "retry", "rejected"}


def test_for_page_is_plain_json():
    words = vocabulary.for_page()
    assert json.loads(json.dumps(words)) == words
    assert words["status"] == {"PENDING": "pending", "PASSED": "passed", "FAILED": "failed", "EXPIRED": "expired"}
    assert words["mode"]["RANDOM"] == "random" and words["result"]["REJECTED"] == "rejected"
    assert all(type(v) is str for group in words.values() for v in group.values())
