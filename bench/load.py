"""Load: many people verifying at once against the deployment operators run (not a test).

    python -m bench.load [--people 144] [--clients 48] [--kind safari_fmp4] [--latency 2]
                         [--kill-worker] [--skip-baseline] [--ffmpeg PATH]

Starts, on this machine: PostgreSQL, Redis, two gunicorn instances on different ports (one
database, one broker, rate limits in Redis), two Celery workers, and a loopback Juhe stand-in
answering after `--latency` seconds. Then `--people` simulated people, `--clients` at a time,
each from its own loopback address: create a session through the operator API (instances taken
in turn), draw a challenge, upload a real fixture file (`--kind`: safari_fmp4 is remuxed,
chrome_webm re-encoded), and wait for the verdict (the upload's answer, or the state the page
asks for). In the same run, the baseline: today's single machine (one gunicorn, SQLite, no broker).

People ask for the state as the capture page does (POLL_MS, STATE_WAIT_S in capture.js). Prints, for
each: sustained verifications/s (between the 10th and the 90th percentile verdict) and all-in
(every verdict over the whole run, ramp and tail included), p50/p95 seconds from upload to verdict, 5xx
answers, lost attempts (accepted uploads without a recorded attempt, or Juhe's log and the
API disagreeing), and paid calls per passed session. `--kill-worker` SIGKILLs one Celery
worker a third of the way through (a replacement starts) and reports how long after the kill
the people it held could go on, that they then passed, and when everyone waiting at the kill
had a verdict. Then the CPU milliseconds per
verification spent by each kind of process (gunicorn, Celery, PostgreSQL, Redis, the ffmpeg
children, this driver with its Juhe stand-in). `--ffmpeg PATH` gives both deployments another
ffmpeg binary (FFMPEG_BINARY), to weigh one against Debian's.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.juhe_standin import JuheStandIn, make_idcard
from tests.media import make_fixture
from tests.pg import PostgresServer
from tests.servers import CeleryWorker, Gunicorn, RedisServer, address, request

KEY = "bench-juhe-key-0123456789"
OPERATORS = [f"bench-operator-{n}" for n in range(8)]  # 300 sessions/min each (limits.API)
EXTRA: dict[str, str] = {}  # settings for every process of both deployments (--ffmpeg)


def idcard(n: int) -> str:
    birth = dt.date(1980, 1, 1) + dt.timedelta(days=n // 900)
    return make_idcard(f"110101{birth:%Y%m%d}{n % 900 + 100:03d}")


class Deployment:
    def __init__(self, root: Path, standin: JuheStandIn, *, scaled: bool, pg: PostgresServer | None = None,
                 redis: RedisServer | None = None):
        env = {"JUHE_KEY": KEY, "JUHE_API_URL": standin.url, "SECRET_KEY": "bench-secret-0123456789",
               "OPERATOR_API_KEYS": ",".join(OPERATORS), "GUNICORN_THREADS": "16", **EXTRA}
        self.workers: list[CeleryWorker] = []
        self.webs: list[Gunicorn] = []
        try:
            self._start(root, standin, env, scaled, pg, redis)
        except BaseException:
            self.stop()
            raise
        self.env, self.root = env, root

    def _start(self, root, standin, env, scaled, pg, redis) -> None:
        if scaled:
            env.update(DATABASE_URL=pg.new_database(), CELERY_BROKER_URL=redis.url,
                       RATELIMIT_STORAGE_URI=redis.url.replace("/0", "/1"))
            for n in range(2):
                self.webs.append(Gunicorn(root / f"web{n}", {**env, "INSTANCE_PATH": str(root / f"web{n}")},
                                          workers=2))
                self.webs[-1].start()
            for n in range(2):
                self.workers.append(CeleryWorker(root, env, concurrency=16, name=f"w{n}"))
                self.workers[-1].start()
        else:
            self.webs.append(Gunicorn(root / "single", env, workers=3))
            self.webs[-1].start()

    def replace_worker(self, index: int) -> None:
        self.workers[index].kill()
        self.workers.append(CeleryWorker(self.root, self.env, concurrency=16, name=f"r{index}").start())

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for web in self.webs:
            web.stop()


def page_polls() -> tuple[float, float, float]:
    """The capture page's own way of asking for the verdict (capture.js's POLL_MS and
    STATE_WAIT_S): each question may wait that long at the server; one answered sooner than the
    schedule is followed by a pause, from `first` growing by half up to `max` seconds."""
    script = (Path(__file__).resolve().parent.parent / "webapp/static/capture.js").read_text()
    found = re.search(r"POLL_MS = \{ first: (\d+), max: (\d+) \}", script)
    wait = re.search(r"STATE_WAIT_S = (\d+);", script)
    if not found or not wait:
        raise SystemExit("capture.js no longer says POLL_MS = { first: …, max: … } and STATE_WAIT_S = …: "
                         "update bench/load.py")
    return int(found[1]) / 1000, int(found[2]) / 1000, float(wait[1])


POLL_FIRST, POLL_MAX, STATE_WAIT = page_polls()


class Person:
    def __init__(self, n: int, deployment: Deployment, video: bytes):
        self.n, self.web = n, deployment.webs[n % len(deployment.webs)]
        self.source, self.video, self.idcard = address(n), video, idcard(n)
        self.statuses: list[int] = []
        self.seconds: list[float] = []   # upload → verdict, per upload
        self.verdict_at: list[float] = []  # when each verdict came (monotonic)
        self.results: list[str] = []

    def call(self, method: str, path: str, **kwargs):
        reply = request(method, self.web.url + path, source=self.source, timeout=180, **kwargs)
        self.statuses.append(reply.status)
        return reply

    def run(self) -> None:
        auth = {"Authorization": f"Bearer {OPERATORS[self.n % len(OPERATORS)]}"}
        created = self.call("POST", "/api/v1/sessions", headers=auth,
                            json_body={"realname": "张三", "idcard": self.idcard, "mode": "silent"})
        if created.status != 201:
            return
        self.id = created.json()["id"]
        self.path = created.json()["url"].split(str(self.web.port), 1)[1]
        for _ in range(2):  # a person whose attempt was interrupted goes on once
            result = self.verify()
            if result != "retry":
                return

    def verify(self) -> str | None:
        challenge = self.call("POST", f"{self.path}/challenge")
        if challenge.status != 201:
            return None
        started = time.monotonic()
        answer = self.call("POST", f"{self.path}/upload", fields={
            "challenge": challenge.json()["challenge"]["id"], "video": ("v.mp4", self.video, "video/mp4")})
        if answer.status == 200:
            result = answer.json()["outcome"]["result"]
        elif answer.status == 202:
            delay = POLL_FIRST
            while True:
                asked = time.monotonic()
                state = self.call("GET", f"{self.path}/state?wait={STATE_WAIT:g}")
                if state.status == 200 and not state.json()["in_flight"]:
                    last = state.json()["last"] or {}
                    result = last.get("result") or "lost"
                    break
                time.sleep(max(0.0, delay - (time.monotonic() - asked)))
                delay = min(delay * 1.5, POLL_MAX)
        else:
            return None
        self.seconds.append(time.monotonic() - started)
        self.verdict_at.append(time.monotonic())
        self.results.append(result)
        return result


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> Counter:
    """CPU seconds used so far by each kind of process on the machine (ffmpeg counted in the
    process that waited for it)."""
    used: Counter = Counter()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        own, children = int(stat[11]) + int(stat[12]), int(stat[13]) + int(stat[14])
        if int(entry.name) == os.getpid():
            kind = "driver + Juhe stand-in"
        elif "gunicorn" in cmd:
            kind = "gunicorn"
        elif "celery" in cmd:
            kind = "celery"
        elif "postgres" in cmd:
            kind = "postgresql"
        elif "redis-server" in cmd:
            kind = "redis"
        else:
            continue
        used[kind] += own / TICK
        # a process's reaped children: ffmpeg for the web and the workers; the postmaster's are
        # the backends of closed connections
        used["postgresql" if kind == "postgresql" else "ffmpeg (children)"] += children / TICK
    return used


def drive(deployment: Deployment, standin: JuheStandIn, people: int, clients: int, video: bytes,
          kill_worker: bool) -> dict:
    standin.requests.clear()
    cpu_before = cpu_seconds()
    crowd = [Person(n, deployment, video) for n in range(people)]
    done = Counter()
    killed_at: list[float] = []

    def one(person: Person) -> None:
        person.run()
        done["people"] += 1
        if kill_worker and deployment.workers and done["people"] == people // 3 and not killed_at:
            killed_at.append(time.monotonic())
            threading.Thread(target=deployment.replace_worker, args=(0,), daemon=True).start()

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, crowd))
    elapsed = time.monotonic() - started
    cpu = cpu_seconds()
    cpu.subtract(cpu_before)

    seconds = sorted(s for p in crowd for s in p.seconds)
    # sustained: the rate between the 10th and the 90th percentile verdict, without the ramp at
    # the start (all clients uploading at once) and the tail (the last few alone on the machine)
    moments = sorted(t for p in crowd for t in p.verdict_at)
    low, high = int(len(moments) * 0.1), int(len(moments) * 0.9) - 1
    sustained = (high - low) / (moments[high] - moments[low]) if high > low else None
    verdicts = [r for p in crowd for r in p.results]
    calls = Counter(r["form"].get("idcard") for r in standin.requests)
    lost = paid_passed = passed = 0
    for person in crowd:
        if not hasattr(person, "id"):
            lost += 1
            continue
        view = request("GET", f"{person.web.url}/api/v1/sessions/{person.id}",
                       headers={"Authorization": f"Bearer {OPERATORS[person.n % len(OPERATORS)]}"}).json()
        if len(view["attempts"]) != calls[person.idcard] or "lost" in person.results \
                or len(person.results) != len(person.seconds) or not person.results:
            lost += 1
        if view["status"] == "passed":
            passed += 1
            paid_passed += calls[person.idcard]
    interrupted = [p for p in crowd if "retry" in p.results]
    # everyone waiting for a verdict when the worker was killed: from the kill to their verdict
    affected = [at - killed_at[0] for p in crowd if killed_at
                for at, waited in zip(p.verdict_at, p.seconds) if at - waited < killed_at[0] < at]
    return {
        "per_second": len(verdicts) / elapsed, "sustained": sustained, "p50": statistics.median(seconds) if seconds else None,
        "p95": seconds[int(len(seconds) * 0.95) - 1] if seconds else None,
        "errors": sum(1 for p in crowd for s in p.statuses if s >= 500),
        "refused": sum(1 for p in crowd for s in p.statuses if 400 <= s < 500),
        "lost": lost, "passed": passed, "people": people,
        "paid_per_pass": paid_passed / passed if passed else None,
        "interrupted": len(interrupted),
        # from the kill to the moment the person could go on (the interrupted verdict)
        "interrupted_wait": max((p.verdict_at[0] - killed_at[0] for p in interrupted), default=None),
        "interrupted_then_passed": sum(p.results[-1] == "passed" for p in interrupted),
        "affected": len(affected), "affected_wait": max(affected, default=None),
        "cpu_ms": {kind: 1000 * seconds / max(len(verdicts), 1) for kind, seconds in cpu.items()},
    }


def row(name: str, r: dict, baseline: dict | None) -> str:
    ratio = f"{r['sustained'] / baseline['sustained']:.2f}×" if baseline and r["sustained"] else "1.00×"
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    paid = "-" if r["paid_per_pass"] is None else f"{r['paid_per_pass']:.2f}"
    sustained = "-" if r["sustained"] is None else f"{r['sustained']:.2f}"
    line = (f"| {name} | {sustained} | {r['per_second']:.2f} | {ratio} | {fmt(r['p50'])} | {fmt(r['p95'])} | {r['errors']} "
            f"| {r['refused']} | {r['lost']} | {r['passed']}/{r['people']} | {paid} |")
    if r["interrupted"]:
        line += (f"\n|   (worker killed: {r['interrupted']} interrupted, free ≤ {fmt(r['interrupted_wait'])} s "
                 f"after the kill, "
                 f"{r['interrupted_then_passed']} passed on their retry; all {r['affected']} waiting at the kill "
                 f"had a verdict ≤ {fmt(r['affected_wait'])} s after it) | | | | | | | | | | |")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=144)
    parser.add_argument("--clients", type=int, default=48)
    parser.add_argument("--kind", default="safari_fmp4")
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--kill-worker", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--ffmpeg", help="FFMPEG_BINARY for both deployments (default: ffmpeg on PATH)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="liveness-load-"))
    video = make_fixture(args.kind, root / "media").read_bytes()
    if args.ffmpeg:
        EXTRA["FFMPEG_BINARY"] = args.ffmpeg
    standin = JuheStandIn(key=KEY, slow_seconds=args.latency).start()
    standin.mode, standin.inspect = JuheStandIn.SLOW, False
    pg, redis = PostgresServer().start(), RedisServer(root / "redis").start()
    results = {}
    try:
        if not args.skip_baseline:
            single = Deployment(root / "baseline", standin, scaled=False)
            try:
                results["one machine, in-process (SQLite)"] = drive(single, standin, args.people, args.clients,
                                                                    video, kill_worker=False)
            finally:
                single.stop()
        scaled = Deployment(root / "scaled", standin, scaled=True, pg=pg, redis=redis)
        try:
            results["2 web + 2 Celery workers (PostgreSQL, Redis)"] = drive(
                scaled, standin, args.people, args.clients, video, kill_worker=args.kill_worker)
        finally:
            scaled.stop()
    finally:
        redis.stop()
        pg.stop()
        standin.stop()

    print(f"\n{args.people} people, {args.clients} at a time, {args.kind}, Juhe answering in {args.latency:g} s\n")
    print("| deployment | sustained/s | all-in/s | sustained vs baseline | p50 s | p95 s | 5xx | 4xx | lost | passed "
          "| paid calls per pass |")
    print("| --- " * 11 + "|")
    baseline = next(iter(results.values())) if not args.skip_baseline else None
    for name, r in results.items():
        print(row(name, r, baseline))
    print("\nCPU milliseconds per verification, by process (2 cores = 2000 ms per second)\n")
    kinds = sorted({kind for r in results.values() for kind in r["cpu_ms"]})
    print("| deployment | " + " | ".join(kinds) + " | all |")
    print("| --- " * (len(kinds) + 2) + "|")
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r['cpu_ms'].get(k, 0):.0f}" for k in kinds)
              + f" | {sum(r['cpu_ms'].values()):.0f} |")


if __name__ == "__main__":
    main()
