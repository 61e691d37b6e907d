"""Racing tabs against the deployed service (real gunicorn, several workers, one SQLite file):
a session holds at most one open challenge and one attempt in flight, is paid for once, and
ends once. Each simulated tab talks from its own loopback address."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import OPERATOR_KEY, STANDIN_KEY, idcard, new_database
from .loopback import Receiver
from .servers import Gunicorn, address, request

AUTH = {"Authorization": f"Bearer {OPERATOR_KEY}"}
TABS = 10
pytestmark = pytest.mark.database


@pytest.fixture(scope="module")
def hook():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def server(request, tmp_path_factory, standin):
    folder = tmp_path_factory.mktemp("races")
    service = Gunicorn(folder / "instance", {
        "DATABASE_URL": new_database(request, folder),
        "JUHE_KEY": STANDIN_KEY, "JUHE_API_URL": standin.url, "SECRET_KEY": "race-secret-0123456789",
        "OPERATOR_API_KEYS": OPERATOR_KEY, "WEBHOOK_SECRET": "race-hook-secret",
        "WEBHOOK_ALLOW_PRIVATE": "true", "GUNICORN_THREADS": "8",
    }, workers=3).start()
    yield service
    service.stop()


def create(server, **body) -> dict:
    reply = request("POST", server.url + "/api/v1/sessions", headers=AUTH,
                    json_body={"realname": "张三", "idcard": idcard(7), "mode": "silent", **body})
    assert reply.status == 201, reply.body
    return reply.json()


def at_once(n: int, call):
    """Run call(i) for i in range(n) from n threads released together; their results in order."""
    gate = threading.Barrier(n)

    def run(i):
        gate.wait()
        return call(i)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def upload(server, path: str, challenge_id: str, video: bytes, source: str):
    return request("POST", server.url + path + "/upload", source=source,
                   fields={"challenge": challenge_id, "video": ("v.mp4", video, "video/mp4")})


def test_racing_tabs_leave_one_challenge_and_pay_once(server, juhe, media):
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 3.0
    created = create(server)
    path = created["url"].split(str(server.port), 1)[1]
    issued = at_once(TABS, lambda i: request("POST", f"{server.url}{path}/challenge", source=address(i)))
    assert all(r.status == 201 for r in issued), [r.body for r in issued]
    ids = {r.json()["challenge"]["id"] for r in issued}
    state = request("GET", f"{server.url}{path}/state").json()
    # Every draw superseded the one before it: only the latest is open.
    assert state["challenge"]["id"] in ids and len(ids) == TABS

    video = media("safari_fmp4").read_bytes()
    tabs = [r.json()["challenge"]["id"] for r in issued]
    answers = at_once(TABS, lambda i: upload(server, path, tabs[i], video, address(100 + i)))
    seen = [(a.status, a.body[:300]) for a in answers]
    accepted = [a for a in answers if a.status == 200]
    refused = [a.json()["error"]["code"] for a in answers if a.status != 200]
    assert len(accepted) == 1 and accepted[0].json()["outcome"]["result"] == "passed", seen
    assert set(refused) <= {"in_flight", "challenge_invalid", "session_closed"} and len(refused) == TABS - 1, seen
    assert len(juhe.requests) == 1
    view = request("GET", f"{server.url}/api/v1/sessions/{created['id']}", headers=AUTH).json()
    assert view["status"] == "passed" and len(view["attempts"]) == 1 and view["attempts"][0]["charged"]


def test_a_superseded_challenge_is_never_paid_for(server, juhe, media):
    """Tabs that drew at the same moment: every challenge but the one open now is refused."""
    created = create(server)
    path = created["url"].split(str(server.port), 1)[1]
    issued = at_once(TABS, lambda i: request("POST", f"{server.url}{path}/challenge", source=address(50 + i)))
    current = request("GET", f"{server.url}{path}/state").json()["challenge"]["id"]
    video = media("safari_fmp4").read_bytes()
    for stale in {r.json()["challenge"]["id"] for r in issued} - {current}:
        answer = upload(server, path, stale, video, address(80))
        assert answer.status == 409 and answer.json()["error"]["code"] == "challenge_invalid"
    assert juhe.requests == []
    assert upload(server, path, current, video, address(81)).json()["outcome"]["result"] == "passed"
    assert len(juhe.requests) == 1


def test_many_uploads_of_one_challenge_make_one_paid_call(server, juhe, media):
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 3.0
    created = create(server)
    path = created["url"].split(str(server.port), 1)[1]
    challenge = request("POST", f"{server.url}{path}/challenge").json()["challenge"]["id"]
    video = media("safari_fmp4").read_bytes()
    answers = at_once(TABS, lambda i: upload(server, path, challenge, video, address(200 + i)))
    assert [a.status for a in answers].count(200) == 1
    assert {a.json()["error"]["code"] for a in answers if a.status != 200} <= {"in_flight", "challenge_invalid"}
    assert len(juhe.requests) == 1


def test_a_session_ends_once_with_one_event(server, juhe, hook, media):
    """Tabs racing over a session that fails on one answer and passes on another: whichever
    wins, the status never flips and the operator gets one event."""
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 2.0
    created = create(server, callback_url=hook.url, idcard=idcard(8))
    juhe.script[idcard(8)] = 267509  # name and number mismatch: final
    path = created["url"].split(str(server.port), 1)[1]
    video = media("safari_fmp4").read_bytes()
    for rounds in range(3):
        issued = at_once(4, lambda i, rounds=rounds: request(
            "POST", f"{server.url}{path}/challenge", source=address(300 + 4 * rounds + i)))
        open_ids = [r.json()["challenge"]["id"] for r in issued if r.status == 201]
        assert bool(open_ids) == (rounds == 0)  # once failed, no tab can draw again
        if open_ids:
            at_once(len(open_ids), lambda i, ids=open_ids: upload(server, path, ids[i], video, address(320 + i)))
    view = request("GET", f"{server.url}/api/v1/sessions/{created['id']}", headers=AUTH).json()
    assert view["status"] == "failed" and len(juhe.requests) == 1 == len(view["attempts"])
    events = request("GET", f"{server.url}/api/v1/sessions/{created['id']}/webhooks", headers=AUTH).json()
    assert len(events["deliveries"]) == 1
