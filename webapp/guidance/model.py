"""The shape of one guidance row and the categories (see the package docstring)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    """Who or what has to change for the next attempt to succeed."""

    CAPTURE = "capture"  # the recording: light, distance, face, sound, actions, length
    IDENTITY = "identity"  # the name / ID number or its registry record
    SERVICE = "service"  # Juhe or the network failed; nothing about the person
    CONFIGURATION = "configuration"  # our deployment or request is wrong (key, quota, params)


@dataclass(frozen=True)
class Guidance:
    """One row of the table; see the module docstring for the meaning of each flag."""

    code: int | str
    meaning: str  # Juhe's wording (Chinese) or ours for our own situations
    category: Category
    retry_helps: bool
    charged: bool
    counts: bool
    final: bool
    person_zh: str
    person_en: str
    operator: str
    problem_zh: str = ""  # the problem in a few words ("光线太暗"), for "最后一次的问题：…"
    problem_en: str = ""  # the same in English ("too dark")
    recording_broken: bool = False  # the file itself was empty or unreadable: record another way
