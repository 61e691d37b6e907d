"""Peak memory of a gunicorn web worker verifying big uploads (not a test).

Run from the repository root::

    python -m bench.memory [--dir DIR]

Starts the deployed web process (gunicorn.conf.py, wsgi:app, one gthread worker) against the
loopback Juhe stand-in, then, one after the other, uploads through the capture page's
endpoint (number mode: the sound is kept, the heaviest case):

* an 8.7 MB Android 1080p MP4 (re-encoded: ffmpeg works, the worker waits);
* a 5.9 MB compliant H.264 MP4 (copied: what goes to Juhe is the biggest body there is,
  nearly 8 MB of base64).

After each it reads the worker's peak resident set (``VmHWM`` in /proc/<pid>/status: the most
it ever held, since it started) and prints it beside the idle figure after start-up.
Target (issue 10): <= 150 MB per worker.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.juhe_standin import JuheStandIn, make_idcard
from tests.media import FFMPEG, _camera, _voice, make_fixture
from tests.servers import Gunicorn, request

KEY, OPERATOR = "standin-key-0123456789", "bench-operator-key"
TARGET_MB = 150


def big_compliant_mp4(directory: Path) -> Path:
    """~5.9 MB of 640x480 H.264/AAC, 10 s: the largest upload the server copies as it is."""
    path = directory / "big_compliant.mp4"
    if path.exists():
        return path
    inputs, vf = _camera(directory, 640, 480, 30)
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *inputs, *_voice(10),
                    "-filter_complex", vf + ",noise=c0s=14:c0f=t+u,format=yuv420p[v]", "-map", "[v]",
                    "-map", "1:a", "-t", "10", "-c:v", "libx264", "-preset", "ultrafast",
                    "-b:v", "4500k", "-maxrate", "4600k", "-bufsize", "2000k", "-c:a", "aac", "-b:a", "64k",
                    "-movflags", "+faststart", str(path)], check=True, timeout=300)
    return path


def peak_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in kB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def verify(web: Gunicorn, video: Path, seq: int) -> dict:
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    number = make_idcard(f"11010119850412{seq:03d}")
    created = request("POST", web.url + "/api/v1/sessions", headers=auth,
                      json_body={"realname": "张三", "idcard": number, "mode": "number"}).json()
    path = "/" + created["url"].split("://", 1)[1].split("/", 1)[1]
    challenge = request("POST", web.url + path + "/challenge").json()["challenge"]
    answer = request("POST", web.url + path + "/upload",
                     fields={"challenge": challenge["id"], "video": (video.name, video.read_bytes())})
    return answer.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="fixture cache directory (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        fixtures = args.dir or Path(tmp) / "fixtures"
        fixtures.mkdir(parents=True, exist_ok=True)
        uploads = [make_fixture("android_1080p_mp4", fixtures), big_compliant_mp4(fixtures)]
        standin = JuheStandIn(key=KEY).start()
        standin.inspect = False  # Juhe's work is not this machine's
        env = {"JUHE_KEY": KEY, "JUHE_API_URL": standin.url, "SECRET_KEY": "bench-memory-secret-0123456789",
               "OPERATOR_API_KEYS": OPERATOR, "DATABASE_URL": f"sqlite:///{Path(tmp) / 'db.sqlite3'}",
               "RATELIMIT_STORAGE_URI": "memory://"}
        web = Gunicorn(Path(tmp) / "instance", env, workers=1).start()
        failures = []
        try:
            worker = web.worker_pids()[0]
            request("GET", web.url + "/")  # the first page: templates compiled
            rss, hwm = peak_kb(worker)
            print(f"idle worker after start-up: RSS {rss / 1024:.1f} MB, peak {hwm / 1024:.1f} MB")
            print("\n| upload | bytes | verdict | worker peak RSS (MB) |\n| --- | ---: | --- | ---: |")
            for seq, video in enumerate(uploads, start=1):
                answer = verify(web, video, seq)
                verdict = (answer.get("outcome") or {}).get("result") or answer.get("error", {}).get("code")
                _, hwm = peak_kb(worker)
                print(f"| {video.name} | {video.stat().st_size:,} | {verdict} | {hwm / 1024:.1f} |")
                if len(standin.requests) != seq:
                    failures.append(f"{video.name} did not reach the stand-in")
            if hwm / 1024 > TARGET_MB:
                failures.append(f"peak {hwm / 1024:.1f} MB > {TARGET_MB} MB")
        finally:
            web.stop()
            standin.stop()
    print("\ntarget: " + ("met" if not failures else "NOT met: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
