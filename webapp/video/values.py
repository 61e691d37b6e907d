"""Small, forgiving conversions of what ffprobe and MP4 headers say."""

from __future__ import annotations

import math


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ratio(value) -> float | None:
    """"30000/1001" or "16:9" -> float; None for 0/0, N/A and the like."""
    if not value or not isinstance(value, str):
        return None
    for sep in ("/", ":"):
        if sep in value:
            num, _, den = value.partition(sep)
            n, d = _float(num), _float(den)
            return n / d if n and d else None
    return _float(value) or None


def _right_angle(degrees: float) -> int:
    return round(degrees / 90.0) % 4 * 90


def _even(value: float) -> int:
    return int(value) // 2 * 2
