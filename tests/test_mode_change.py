"""Number mode becoming action mode when the person's microphone fails: only where the session
allows it (ACTION_FALLBACK, or the session's own action_fallback), only from number mode, only
while the session can take a video; recorded for the operator, with a fresh action challenge."""
from __future__ import annotations

from .conftest import AUTH, create_session, idcard


def switch(client, person, **body):
    return client.post(f"{person.path}/mode", json={"mode": "action", "reason": "microphone_refused", **body})


def test_a_number_session_becomes_action_and_the_operator_sees_when_and_why(client, new_session):
    created, person = new_session(mode="number")
    before = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert before["action_fallback"] is True and before["mode_change"] is None
    digits = person.challenge()
    answer = switch(client, person)
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["challenge"]["mode"] == "action" and body["challenge"]["id"] != digits["id"]
    assert body["state"]["mode"] == "action" and body["state"]["action_fallback"] is False
    seen = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert seen["mode"] == "action"
    assert seen["mode_change"]["from"] == "number" and seen["mode_change"]["to"] == "action"
    assert seen["mode_change"]["reason"] == "microphone_refused" and seen["mode_change"]["at"]
    # The digits drawn before the switch are no longer usable; the new challenge is.
    assert client.get(f"{person.path}/state").get_json()["challenge"]["id"] == body["challenge"]["id"]
    again = switch(client, person)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "mode_fixed"


def test_an_operator_can_keep_number_mode(client, new_session):
    created, person = new_session(mode="number", action_fallback=False)
    state = client.get(f"{person.path}/state").get_json()
    assert state["action_fallback"] is False
    answer = switch(client, person)
    assert answer.status_code == 409 and answer.get_json()["error"]["code"] == "mode_fixed"
    seen = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert seen["mode"] == "number" and seen["mode_change"] is None


def test_the_setting_decides_for_sessions_that_do_not_say(make_app):
    client = make_app(ACTION_FALLBACK=False).test_client()
    created, person = create_session(client, mode="number")
    seen = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert seen["action_fallback"] is False
    assert switch(client, person).status_code == 409
    _, person = create_session(client, mode="number", action_fallback=True, idcard=idcard(2))
    assert switch(client, person).status_code == 201


def test_only_number_mode_switches_and_only_for_a_known_reason(client, new_session):
    _, silent = new_session(mode="silent")
    assert switch(client, silent).status_code == 409
    _, person = new_session(mode="number")
    assert switch(client, person, reason="bored").status_code == 400
    assert switch(client, person, mode="silent").status_code == 400
    assert client.post(f"{person.path}/mode", data="not json").status_code == 400
    assert client.post("/v/no-such-token-0123456789/mode",
                       json={"mode": "action", "reason": "microphone_silent"}).status_code == 404


def test_action_fallback_must_be_true_or_false(client):
    response = client.post("/api/v1/sessions", headers=AUTH, json={
        "realname": "张三", "idcard": idcard(5), "mode": "number", "action_fallback": "yes"})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_action_fallback"
