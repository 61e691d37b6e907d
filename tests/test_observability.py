"""Prometheus metrics at /metrics: for operators only, counting what happened, naming no one."""
from __future__ import annotations

import json
import re

import pytest

from webapp.settings import ConfigurationError

from .conftest import AUTH, idcard


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample in the exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == want:
            return float(match.group(2))
    return 0.0


def scrape(client) -> str:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_metrics_need_an_operator_key(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_verification_is_counted_by_outcome_mode_and_charge(client, juhe, new_session, media):
    before = scrape(client)
    _, person = new_session(idcard=idcard(31), mode="number")
    assert person.upload(media("safari_fmp4")).get_json()["outcome"]["result"] == "passed"
    _, person = new_session(idcard=idcard(32), mode="number")
    assert person.upload(media("silent")).get_json()["outcome"]["result"] == "rejected"
    after = scrape(client)
    grew = lambda name, **labels: sample(after, name, **labels) - sample(before, name, **labels)  # noqa: E731
    assert grew("liveness_verifications_total", outcome="0", mode="number") == 1
    assert grew("liveness_juhe_calls_total", charged="true") == 1
    assert grew("liveness_ffmpeg_seconds_count") == 1 and grew("liveness_juhe_seconds_count") == 1
    rejected = [line for line in after.splitlines()
                if line.startswith("liveness_verifications_total{") and 'outcome="0"' not in line]
    assert rejected, "the rejected upload is counted under its own outcome"
    assert sample(after, "liveness_attempts_in_flight") == 0 and "liveness_attempts_queued 0.0" in after
    assert idcard(31) not in after and "张三" not in after


def test_under_gunicorn_every_worker_counts_and_logs_are_json_lines(tmp_path, standin, juhe, media):
    """Three workers, uploads landing on any of them: /metrics adds them all up. With
    LOG_FORMAT=json the app's lines are JSON objects carrying the request's id, naming no one."""
    from .conftest import OPERATOR_KEY, STANDIN_KEY
    from .servers import Gunicorn, address, request
    service = Gunicorn(tmp_path / "instance", {  # metrics in <instance>/metrics (gunicorn.conf.py)
        "JUHE_KEY": STANDIN_KEY, "JUHE_API_URL": standin.url, "SECRET_KEY": "obs-secret-0123456789",
        "OPERATOR_API_KEYS": OPERATOR_KEY, "LOG_FORMAT": "json"}, workers=3).start()
    try:
        video = media("safari_fmp4").read_bytes()
        for n in range(4):
            created = request("POST", service.url + "/api/v1/sessions", headers=AUTH,
                              json_body={"realname": "张三", "idcard": idcard(40 + n), "mode": "silent"}).json()
            path = created["url"].split(str(service.port), 1)[1]
            challenge = request("POST", f"{service.url}{path}/challenge", source=address(n)).json()["challenge"]
            reply = request("POST", f"{service.url}{path}/upload", source=address(n),
                            headers={"X-Request-Id": f"req-{n}"},
                            fields={"challenge": challenge["id"], "video": ("v.mp4", video, "video/mp4")})
            assert reply.status == 200 and reply.headers["X-Request-Id"] == f"req-{n}"
        text = request("GET", service.url + "/metrics", headers=AUTH).body.decode()
        assert sample(text, "liveness_verifications_total", outcome="0", mode="silent") == 4
        assert sample(text, "liveness_juhe_calls_total", charged="true") == 4
        assert any((service.instance / "metrics").iterdir())
        output = service.output()
    finally:
        service.stop()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    for n in range(4):
        mine = [line["message"] for line in lines if line["request_id"] == f"req-{n}"]
        assert any("juhe antiFaceId" in m for m in mine) and any("outcome=0" in m for m in mine), mine
    assert not any(idcard(40 + n) in output for n in range(4)) and OPERATOR_KEY not in output


# -- whose counts: /metrics is service-wide (issue 19, part 5, fault 2) ---------------------------
METRICS_KEY = "metrics-key-0123456789"
OTHER = {"Authorization": "Bearer other-operator-key"}


def test_with_several_operator_keys_no_operator_key_reads_the_service_wide_counts(make_app):
    client = make_app(OPERATOR_API_KEYS="op-key-abcdef,other-operator-key").test_client()
    client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(41)})
    for headers in (AUTH, OTHER):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 403, refused.status_code
        error = refused.get_json()["error"]
        assert error["code"] == "metrics_key_needed" and "METRICS_KEY" in error["message"]
        assert "liveness_" not in refused.get_data(as_text=True)
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_metrics_key_reads_them_and_the_one_operator_key_still_does(make_app):
    several = make_app(OPERATOR_API_KEYS="op-key-abcdef,other-operator-key", METRICS_KEY=METRICS_KEY)
    client = several.test_client()
    assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).status_code == 200
    assert client.get("/metrics", headers=OTHER).status_code == 403
    alone = make_app(METRICS_KEY=METRICS_KEY).test_client()   # one operator key: nothing to leak
    assert scrape(alone)
    assert alone.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).status_code == 200


def test_a_short_metrics_key_stops_the_start(make_app):
    with pytest.raises(ConfigurationError, match="METRICS_KEY"):
        make_app(METRICS_KEY="short")


def test_the_console_shows_the_service_wide_counts_exactly_where_metrics_would(make_app, monkeypatch):
    """The console's funnel follows /metrics' rule for operator keys, sandbox or not."""
    from webapp.web import funnel

    from .test_console import sign_in
    monkeypatch.setattr(funnel, "service_outcomes", lambda: [{"code": "0", "label": "通过", "count": 1}])
    for overrides, shown in (({}, True), ({"OPERATOR_API_KEYS": "op-key-abcdef,other-operator-key"}, False),
                             ({"JUHE_KEY": None, "OPERATOR_API_KEYS": "op-key-abcdef,other-operator-key"}, False)):
        client = make_app(**overrides).test_client()
        sign_in(client)
        page = client.get("/console/funnel").get_data(as_text=True)
        assert ('id="service"' in page) is shown, overrides
        assert (client.get("/metrics", headers=AUTH).status_code == 200) is shown, overrides
