"""The operator API's session list and session read beside the pages' writes, on PostgreSQL (not a test).

    python -m bench.list_sessions [--quick] [--sessions 300] [--listers 4] [--writers 8]
                                  [--seconds 8] [--workers N]

Starts, on this machine: a throw-away PostgreSQL (tests/pg.py) and the deployed web process
(gunicorn -c gunicorn.conf.py, gthread, WEB_CONCURRENCY as gunicorn.conf.py picks it for this
machine unless `--workers`), in sandbox mode. One change from `wsgi:app`: the app is built with
Flask-Limiter off (`webapp:create_app({'RATELIMIT_ENABLED': False})`), since one operator key may
make 300 API calls a minute and one address 300 requests (limits.py): the point here is how
requests wait for each other in the database, not the limits. Then `--sessions` sessions are
created through the operator API (POST /api/v1/sessions, one operator key), and, after a short
warm-up, in turn, each for `--seconds` (the list's phases 1.5 times as long, /healthz's at most 4 s;
the same run, the same database):

* `/healthz` alone, `--listers` clients: what the machine answers without the database;
* writers alone: `--writers` pages drawing challenges (POST /v/<token>/challenge, which locks
  its session: SELECT … FOR UPDATE), every other request on a "hot" session (one of the 100
  newest, which `?limit=100` lists) and every other on a "cold" one (older: never listed);
* `GET /api/v1/sessions?limit=100` alone, `--listers` clients;
* the same list while the writers write;
* `GET /api/v1/sessions/<id>` (a hot session at random) alone, `--listers` clients;
* the same read while the writers write.

Every client asks again as soon as it has its answer (a new connection each time); a writer
held on a hot session is late for its next cold one too, so hot and cold writers answer as many
times: compare their latencies. A request started in a phase is counted however late it ends. Prints
requests/s, p50/p95 latency and the p95 against the same requests alone, and how many answers
were not 2xx (or a list without its 100 sessions). With the listers, hot writers' p95 against cold
writers' p95 (same moment, same CPU) is what the list's row locks cost the pages; the list's
p95 with writers against alone is what the pages' locks cost the list. Only HTTP is used, so
the same command measures the list however it reads.
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import random
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.juhe_standin import make_idcard
from tests.pg import PostgresServer
from tests.servers import GUNICORN, ROOT, Gunicorn, request

OPERATOR = "bench-list-operator-0123456789"
APP = "webapp:create_app({'RATELIMIT_ENABLED': False})"  # wsgi:app with Flask-Limiter off
LIST_LIMIT = 100


class Service(Gunicorn):
    """tests.servers.Gunicorn (gunicorn.conf.py, its workers and threads), serving APP."""

    def start(self, wait: bool = True) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", APP], cwd=ROOT,
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if wait:
            self.wait_ready()
        return self


def idcard(n: int) -> str:
    birth = dt.date(1980, 1, 1) + dt.timedelta(days=n // 900)
    return make_idcard(f"110101{birth:%Y%m%d}{n % 900 + 100:03d}")


class Calls:
    """One kind of request's answers in a phase: every request started in it, however late it ends."""

    def __init__(self, name: str):
        self.name, self.seconds, self.failed, self.lock = name, [], 0, threading.Lock()
        self.last = 0.0  # when the last one ended (perf_counter)

    def add(self, seconds: float, ok: bool, ended: float) -> None:
        with self.lock:
            self.seconds.append(seconds)
            self.failed += not ok
            self.last = max(self.last, ended)

    def figures(self, started: float) -> dict:
        """Requests/s: all of them over the time from the phase's start to the last one's end."""
        s = sorted(self.seconds)
        return {"rate": len(s) / (self.last - started) if s else 0.0, "n": len(s), "failed": self.failed,
                "p50": statistics.median(s) * 1000 if s else None,
                "p95": s[max(0, -(-len(s) * 95 // 100) - 1)] * 1000 if s else None}


class Bench:
    def __init__(self, web: Service, hot: list[dict], cold: list[dict]):
        self.web, self.hot, self.cold = web, hot, cold
        self.auth = {"Authorization": f"Bearer {OPERATOR}"}

    def healthz(self, calls: Calls, rng: random.Random) -> None:
        self.timed(calls, "GET", "/healthz", expect=200)

    def list(self, calls: Calls, rng: random.Random) -> None:
        def full(reply) -> bool:
            return len(reply.json().get("sessions", ())) == LIST_LIMIT
        self.timed(calls, "GET", f"/api/v1/sessions?limit={LIST_LIMIT}", headers=self.auth, expect=200, check=full)

    def get(self, calls: Calls, rng: random.Random) -> None:
        session = rng.choice(self.hot)
        self.timed(calls, "GET", f"/api/v1/sessions/{session['id']}", headers=self.auth, expect=200)

    def writer(self, hot: Calls, cold: Calls, rng: random.Random, turn: list[int]) -> None:
        """A page drawing a challenge: hot and cold sessions in turn."""
        turn[0] += 1
        calls, pool = (hot, self.hot) if turn[0] % 2 else (cold, self.cold)
        self.timed(calls, "POST", f"{rng.choice(pool)['path']}/challenge", expect=201)

    def timed(self, calls: Calls, method: str, path: str, *, expect: int, headers: dict | None = None,
              check=None) -> None:
        started = time.perf_counter()
        try:
            reply = request(method, self.web.url + path, headers=headers, timeout=120)
            ok = reply.status == expect and (check is None or check(reply))
        except (OSError, ValueError):  # no answer, or a list that is not JSON
            ok = False
        ended = time.perf_counter()
        calls.add(ended - started, ok, ended)

    def phase(self, seconds: float, readers: tuple[str, int] | None, writers: int) -> dict[str, dict]:
        """Run `readers` (kind, clients) and `writers` together for `seconds` (no request starts
        later; those under way are waited for); figures per kind."""
        stop = threading.Event()
        kinds: dict[str, Calls] = {}
        threads = []

        def loop(step, *args) -> None:
            rng = random.Random()
            while not stop.is_set():
                step(*args, rng)

        if readers:
            kind, clients = readers
            kinds[kind] = Calls(kind)
            threads += [threading.Thread(target=loop, args=(getattr(self, kind), kinds[kind]))
                        for _ in range(clients)]
        if writers:
            kinds["hot"], kinds["cold"] = Calls("hot"), Calls("cold")
            for n in range(writers):
                turn = [n]
                threads.append(threading.Thread(
                    target=loop, args=(lambda h, c, rng, t=turn: self.writer(h, c, rng, t), kinds["hot"], kinds["cold"])))
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        return {kind: calls.figures(started) for kind, calls in kinds.items()}


def create_sessions(web: Service, count: int, clients: int) -> tuple[list[dict], list[dict]]:
    """`count` sessions through the API; (the LIST_LIMIT newest, as the list returns them; the rest)."""
    auth = {"Authorization": f"Bearer {OPERATOR}"}

    def one(n: int) -> dict:
        reply = request("POST", web.url + "/api/v1/sessions", headers=auth, json_body={
            "realname": "张三", "idcard": idcard(n), "mode": "silent", "reference": f"bench-{n}"})
        if reply.status != 201:
            raise SystemExit(f"creating a session answered {reply.status}: {reply.body[:300]!r}")
        body = reply.json()
        return {"id": body["id"], "path": body["url"].split(str(web.port), 1)[1]}

    with ThreadPoolExecutor(clients) as pool:
        made = list(pool.map(one, range(count)))
    listed = request("GET", web.url + f"/api/v1/sessions?limit={LIST_LIMIT}", headers=auth).json()["sessions"]
    newest = {s["id"] for s in listed}
    if len(newest) != LIST_LIMIT:
        raise SystemExit(f"the list gave {len(newest)} sessions, not {LIST_LIMIT}")
    return [s for s in made if s["id"] in newest], [s for s in made if s["id"] not in newest]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 sessions, 4 s phases (about half the time)")
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--listers", type=int, default=4, help="concurrent list (or read) clients")
    parser.add_argument("--writers", type=int, default=8, help="concurrent pages drawing challenges")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="length of each phase (the list's: 1.5×, /healthz: at most 4 s)")
    parser.add_argument("--workers", type=int, default=min(4, multiprocessing.cpu_count() + 1),
                        help="gunicorn workers (default: gunicorn.conf.py's for this machine)")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.seconds = min(args.sessions, 150), min(args.seconds, 4.0)
    if args.sessions <= LIST_LIMIT:
        parser.error(f"--sessions must be more than {LIST_LIMIT} (the cold ones are the older sessions)")

    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="liveness-list-"))
    pg = PostgresServer().start()
    web = None
    try:
        env = {"DATABASE_URL": pg.new_database(), "OPERATOR_API_KEYS": OPERATOR,
               "SECRET_KEY": "bench-secret-0123456789"}
        web = Service(root / "instance", env, workers=args.workers).start()
        hot, cold = create_sessions(web, args.sessions, args.listers)
        ready = time.monotonic() - began
        bench = Bench(web, hot, cold)
        bench.phase(min(2.0, args.seconds), ("list", args.listers), args.writers)  # warm-up: pools, caches
        n, w, t = args.listers, args.writers, args.seconds
        # the list answers a few times a second: its phases are longer, to have more than a handful
        results = {
            "healthz": bench.phase(min(4.0, t), ("healthz", n), 0),
            "writers": bench.phase(t, None, w),
            "list": bench.phase(1.5 * t, ("list", n), 0),
            "list+writers": bench.phase(1.5 * t, ("list", n), w),
            "get": bench.phase(t, ("get", n), 0),
            "get+writers": bench.phase(t, ("get", n), w),
        }
    finally:
        if web is not None:
            web.stop()
        pg.stop()

    print(f"\n{args.sessions} sessions (PostgreSQL), gunicorn {args.workers} workers × gthread, "
          f"{args.listers} readers, {args.writers} writers, {args.seconds:g} s a phase (lists {1.5 * args.seconds:g} s), "
          f"{time.monotonic() - began:.0f} s in all ({ready:.0f} s to start and create the sessions)\n")
    print("| requests | beside | answers | req/s | p50 ms | p95 ms | p95 vs alone | not OK |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")

    def row(what: str, beside: str, f: dict, alone: dict | None) -> None:
        ratio = f"{f['p95'] / alone['p95']:.2f}×" if alone and f["p95"] and alone["p95"] else "1.00×"
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        print(f"| {what} | {beside} | {f['n']} | {f['rate']:.1f} | {fmt(f['p50'])} | {fmt(f['p95'])} | {ratio} | {f['failed']} |")

    r = results
    row("GET /healthz", "-", r["healthz"]["healthz"], None)
    row(f"GET /api/v1/sessions?limit={LIST_LIMIT}", "-", r["list"]["list"], None)
    row(f"GET /api/v1/sessions?limit={LIST_LIMIT}", f"{w} writers", r["list+writers"]["list"], r["list"]["list"])
    row("GET /api/v1/sessions/<id>", "-", r["get"]["get"], None)
    row("GET /api/v1/sessions/<id>", f"{w} writers", r["get+writers"]["get"], r["get"]["get"])
    for temp in ("hot", "cold"):
        what = f"POST /v/<token>/challenge, {temp}"
        alone = r["writers"][temp]
        row(what, "-", alone, None)
        row(what, f"{n} listers", r["list+writers"][temp], alone)
        row(what, f"{n} readers", r["get+writers"][temp], alone)
    lw = r["list+writers"]
    if lw["hot"]["p95"] and lw["cold"]["p95"]:
        print(f"\nWith the listers: hot writers' p95 / cold writers' p95 = {lw['hot']['p95'] / lw['cold']['p95']:.2f} "
              f"(writers alone: {r['writers']['hot']['p95'] / r['writers']['cold']['p95']:.2f}); "
              f"list req/s with writers / alone = {lw['list']['rate'] / r['list']['list']['rate']:.2f}")


if __name__ == "__main__":
    main()
