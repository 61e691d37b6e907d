"""Challenges: what a person is asked to do on camera, drawn with `secrets`.

A mode names the kind of challenge; Juhe knows it as `livenessType` with `validateData`:
silent = 0 (nothing to say), number = 1 (four digits read aloud; the video keeps its sound),
action = 2 (`1,2` = open the mouth then close the eyes, `2,1` the reverse).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from .vocabulary import CHALLENGE_MODES, LIVENESS_TYPE, Mode

MODES = CHALLENGE_MODES
ACTIONS = {"1": {"zh": "张嘴", "en": "Open your mouth"}, "2": {"zh": "闭眼", "en": "Close your eyes"}}


def resolve_mode(mode: str) -> str:
    """`random` becomes one of the three modes; others pass through."""
    return secrets.choice(MODES) if mode == Mode.RANDOM else mode


@dataclass(frozen=True)
class Drawn:
    """A freshly drawn challenge: the mode and Juhe's validateData for it (None in silent mode)."""

    mode: str
    validate_data: str | None

    @property
    def liveness_type(self) -> int:
        return LIVENESS_TYPE[self.mode]


def draw(mode: str, previous: str | None = None) -> Drawn:
    """Draw a challenge for `mode`. In number mode the digits differ from `previous`, so a retry
    never shows the code of the attempt before it."""
    if mode == Mode.NUMBER:
        while True:
            digits = f"{secrets.randbelow(10_000):04d}"
            if digits != previous:
                return Drawn(mode, digits)
    if mode == Mode.ACTION:
        return Drawn(mode, secrets.choice(("1,2", "2,1")))
    if mode == Mode.SILENT:
        return Drawn(mode, None)
    raise ValueError(f"unknown mode {mode!r}")


def describe(mode: str, validate_data: str | None) -> dict:
    """What the page shows for a challenge: the digits, or the actions in order."""
    if mode == Mode.NUMBER:
        return {"digits": validate_data}
    if mode == Mode.ACTION:
        if validate_data is None:
            raise ValueError("an action challenge carries its actions")
        return {"actions": [{"code": int(c), **ACTIONS[c]} for c in validate_data.split(",")]}
    return {}
