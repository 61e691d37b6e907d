"""Browser figures, measured by headless Chromium (not a test of their own).

Run from the repository root::

    python -m bench.recording

Runs the two browser tests that measure (tests/browser/test_recording_speed.py and
test_page_weight.py) and prints what they wrote: for a 6 s recording of a noisy fake camera
in number and silent mode, what Chromium recorded, the upload's bytes, whether the server
copied it, the server's processing time, and the time from the moment the page sent the
recording to the request's arrival at the loopback Juhe; then the capture page's bytes on the
wire before the camera starts, first visit and next visit.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "tests" / "browser" / "screenshots"
TESTS = ["tests/browser/test_recording_speed.py", "tests/browser/test_page_weight.py"]


def main() -> int:
    for name in ("recording-speed.json", "page-weight.json"):
        (SCREENSHOTS / name).unlink(missing_ok=True)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], cwd=ROOT,
                           capture_output=True, text=True)
    print(tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else tests.stderr[-2000:])
    speed = SCREENSHOTS / "recording-speed.json"
    if speed.exists():
        print("\n| mode | recorded | upload bytes | copied | server s | sent → request at Juhe s |")
        print("| --- | --- | ---: | --- | ---: | ---: |")
        for mode, r in json.loads(speed.read_text()).items():
            print(f"| {mode} | {r['recorded']} | {r['upload_bytes']:,} | {r['copied']} | {r['server_s']:.3f} "
                  f"| {r['sent_to_juhe_s']:.3f} |")
    weight = SCREENSHOTS / "page-weight.json"
    if weight.exists():
        w = json.loads(weight.read_text())
        print(f"\ncapture page before the camera (up to its consent screen), on the wire: first visit "
              f"{w['before_the_camera_bytes']:,} bytes (through the camera request "
              f"{w['through_the_camera_request_bytes']:,}), next visit {w['second_visit_bytes']:,} bytes")
    return tests.returncode


if __name__ == "__main__":
    sys.exit(main())
