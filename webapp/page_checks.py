"""What the capture page's own check saw during a recording (webapp/static/performance.js), as the
page sends it with the upload (the `checks` form field): per check passed, missed or not
measured; the looks it took and their rate; whether the person sent a recording the check found
lacking ("仍然发送").

Flask-free. Stored on the attempt for the operator, so that how often the page and Juhe agree
can be learnt (metrics: liveness_page_checks_total). The page is not trusted with anything: what
comes is read against a closed vocabulary, anything else is dropped, and a field that cannot be
read is no field (the upload goes on; the check only ever advises).
"""
from __future__ import annotations

import json
import math

from .vocabulary import Mode

MAX_BYTES = 2048
PASSED, MISSED, NOT_MEASURED = "passed", "missed", "not_measured"
STATUSES = (PASSED, MISSED, NOT_MEASURED)
# The checks of each mode (performance.js CHECKS).
CHECKS: dict[str, tuple[str, ...]] = {
    Mode.ACTION: ("light", "face", "order", "mouth", "eyes"),
    Mode.NUMBER: ("light", "face", "voice", "lips"),
    Mode.SILENT: ("light", "face"),
}


def parse(text: str | None, mode: str) -> dict | None:
    """The page's report as stored: {"verdict", "checks": {name: status}, "looks", "fps",
    "sent_anyway"}, only with the checks of `mode`; None when there is none or it cannot be read."""
    if not text or len(text.encode("utf-8", "replace")) > MAX_BYTES:
        return None
    try:
        sent = json.loads(text)
    except ValueError:
        return None
    if not isinstance(sent, dict) or not isinstance(sent.get("checks"), dict):
        return None
    seen = sent["checks"]
    checks = {name: seen[name] if seen.get(name) in STATUSES else NOT_MEASURED
              for name in CHECKS.get(mode, ())}  # a StrEnum key is found by its string
    missed = any(status == MISSED for status in checks.values())
    measured = any(status != NOT_MEASURED for status in checks.values())
    return {
        # Derived here, not taken from the page: the verdict always agrees with the checks.
        "verdict": MISSED if missed else PASSED if measured else NOT_MEASURED,
        "checks": checks,
        "looks": _count(sent.get("looks"), 10_000),
        "fps": _rate(sent.get("fps")),
        "sent_anyway": sent.get("sent_anyway") is True and missed,
    }


def _count(value: object, limit: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        return None
    return value


def _rate(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return round(float(value), 1) if 0 <= value <= 240 else None


def dumps(report: dict | None) -> str | None:
    return None if report is None else json.dumps(report, separators=(",", ":"), sort_keys=True)
