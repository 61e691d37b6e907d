"""What the capture page's own check saw (webapp/static/performance.js) travels with the upload and
is kept on the attempt for the operator: read against a closed vocabulary, never trusted for more,
never in the way of the upload. The browser side is in tests/browser/test_performance_check.py."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp import page_checks

from .conftest import AUTH, idcard
from .test_observability import sample, scrape


def upload_with(person, video, checks) -> dict:
    challenge = person.challenge()["id"]
    with open(video, "rb") as fh:
        response = person.client.post(f"{person.path}/upload", content_type="multipart/form-data", data={
            "challenge": challenge, "checks": checks if isinstance(checks, str) else json.dumps(checks),
            "video": (fh, video.name)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["outcome"]


def attempts(client, session_id) -> list[dict]:
    return client.get(f"/api/v1/sessions/{session_id}", headers=AUTH).get_json()["attempts"]


def test_the_operator_reads_what_the_page_saw_beside_what_juhe_answered(client, juhe, new_session, media):
    created, person = new_session(mode="action", idcard=idcard(31))
    juhe.script[idcard(31)] = 267520  # 未检测到张嘴动作: the page had seen it too, and was sent anyway
    missed = {"verdict": "missed", "looks": 41, "fps": 6.8, "sent_anyway": True,
              "checks": {"face": "passed", "light": "passed", "order": "not_measured", "mouth": "missed",
                         "eyes": "passed"}}
    assert upload_with(person, media("chrome_webm"), missed)["result"] == "retry"
    juhe.script.clear()
    good = {**missed, "sent_anyway": False, "verdict": "passed",
            "checks": {**missed["checks"], "order": "passed", "mouth": "passed"}}
    assert upload_with(person, media("chrome_webm"), good)["result"] == "passed"
    first, second = attempts(client, created["id"])
    assert first["error_code"] == 267520 and first["page_checks"] == missed
    assert second["error_code"] == 0 and second["page_checks"] == good
    text = scrape(client)
    assert sample(text, "liveness_page_checks_total", page="missed", juhe="failed") >= 1
    assert sample(text, "liveness_page_checks_total", page="passed", juhe="passed") >= 1


def test_only_the_checks_of_the_challenges_mode_are_kept_and_the_verdict_follows_them(client, juhe, new_session,
                                                                                    media):
    created, person = new_session(mode="number")
    lying = {"verdict": "passed", "looks": 12, "fps": 3.0, "sent_anyway": True,
             "checks": {"face": "passed", "light": "maybe", "voice": "missed", "mouth": "passed",
                        "lips": "passed", "<script>": "passed"}}
    upload_with(person, media("safari_fmp4"), lying)
    [attempt] = attempts(client, created["id"])
    assert attempt["page_checks"] == {
        "verdict": "missed", "looks": 12, "fps": 3.0, "sent_anyway": True,
        "checks": {"face": "passed", "light": "not_measured", "voice": "missed", "lips": "passed"}}


def test_a_recording_sent_without_a_check_has_none(client, juhe, new_session, media):
    """The phone's camera app (a chosen file), an older page: no field, nothing made up."""
    created, person = new_session(mode="silent")
    assert person.upload(media("android_1080p_mp4")).get_json()["outcome"]["result"] == "passed"
    assert attempts(client, created["id"])[0]["page_checks"] is None
    text = scrape(client)
    assert sample(text, "liveness_page_checks_total", page="none", juhe="passed") >= 1


def test_a_check_field_that_cannot_be_read_is_dropped_and_the_upload_goes_on(client, juhe, new_session, media):
    junk = ["{", "[1, 2]", '{"checks": 5}', "x" * 5000, json.dumps({"checks": {"face": "passed" * 400}})]
    for n, field in enumerate(junk):
        created, person = new_session(mode="silent", idcard=idcard(40 + n))
        assert upload_with(person, media("android_1080p_mp4"), field)["result"] == "passed"
        assert attempts(client, created["id"])[0]["page_checks"] is None, field
    created, person = new_session(mode="silent", idcard=idcard(49))
    upload_with(person, media("android_1080p_mp4"), '{"checks": {"face": "passed"}, "looks": 1e400, "fps": -3}')
    assert attempts(client, created["id"])[0]["page_checks"] == {
        "verdict": "passed", "checks": {"face": "passed", "light": "not_measured"}, "looks": None, "fps": None,
        "sent_anyway": False}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30).map(json.dumps)), st.sampled_from(["action", "number", "silent", "random", ""]))
def test_whatever_a_page_sends_is_read_into_the_closed_vocabulary_or_dropped(text, mode):
    kept = page_checks.parse(text, mode)
    if kept is None:
        return
    assert set(kept) == {"verdict", "checks", "looks", "fps", "sent_anyway"}
    assert set(kept["checks"]) <= {"face", "light", "order", "mouth", "eyes", "voice", "lips"}
    assert set(kept["checks"].values()) <= set(page_checks.STATUSES)
    assert kept["verdict"] == ("missed" if "missed" in kept["checks"].values() else
                               "passed" if set(kept["checks"].values()) - {"not_measured"} else "not_measured")
    assert kept["sent_anyway"] in (True, False) and (not kept["sent_anyway"] or kept["verdict"] == "missed")
    assert len(page_checks.dumps(kept)) < page_checks.MAX_BYTES
