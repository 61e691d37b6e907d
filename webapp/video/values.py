"""Small, forgiving conversions of what ffprobe and MP4 headers say."""

from __future__ import annotations

import math


def as_int(value) -> int | None:
    """``int(value)``, or None when it is not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def as_float(value) -> float | None:
    """``float(value)``, or None when it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_ratio(value) -> float | None:
    """"30000/1001" or "16:9" -> float; None for 0/0, N/A and the like."""
    if not value or not isinstance(value, str):
        return None
    for sep in ("/", ":"):
        if sep in value:
            num, _, den = value.partition(sep)
            n, d = as_float(num), as_float(den)
            return n / d if n and d else None
    return as_float(value) or None


def right_angle(degrees: float) -> int:
    """The nearest of 0, 90, 180, 270 to an angle in degrees."""
    return round(degrees / 90.0) % 4 * 90


def floor_even(value: float) -> int:
    """The even integer at or below a positive value (video sides must be even)."""
    return int(value) // 2 * 2
