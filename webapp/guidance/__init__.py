"""Every answer Juhe can give, and our own failure situations, as one table of data.

For each code: Juhe's own meaning (copied from its document), a category, whether a new
attempt can help, whether Juhe bills it, whether it counts toward ``MAX_ATTEMPTS``, whether
it ends the session as failed, what the person should do next (Chinese and English) and what
the operator should know. People never see raw codes or anything about keys; only the
``operator`` text may mention them.

Counting (docs/contract.md): an attempt counts when Juhe judged the video or the identity. Juhe's
own service/network errors (267501, 267508, 267522, 267535, 267545) and every system code do
not count. Our decision on top of the contract: the request-parameter codes (267502, 267503,
267506, 267507, 267510) and the download/decrypt codes (267523, 267524, 267525) do not count
either: they mean our request was malformed or Juhe failed to read it, so Juhe judged nothing,
and a person must not lose an attempt to our bug or Juhe's plumbing.

``final`` means the session fails now: a retry cannot change the answer (267509 name/number
mismatch, 267526/267527 not in the registry, 267528 registry photo unusable, and 267504/267505
because the identity itself is what Juhe refused). ``0`` is not final in this sense: whether it
passes depends on the score (``low_score`` when below the pass line).

The package: ``model`` (``Category``, ``Guidance``), ``table`` (the rows, each with its
problem in a few words, which the capture page shows when the attempts are used up),
``answers`` (``guidance_key``: which row a ``webapp.juhe.answer`` answer stands for).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from .answers import LOW_SCORE, guidance_key
from .model import Category, Guidance
from .table import ROWS

__all__ = ["GUIDANCE", "LOW_SCORE", "Category", "Guidance", "guidance_for", "guidance_key"]

GUIDANCE: Mapping[int | str, Guidance] = MappingProxyType({row.code: row for row in ROWS})
"""Every code of Juhe's document (0, 267501-267549, the 100xx system codes) plus our keys."""

UNKNOWN_PROBLEM = ("未知错误", "an unknown error")  # guidance_for's fallback: its problem words


def guidance_for(code: int | str | None) -> Guidance:
    """The table row for ``code``; a numeric string is looked up as its number.

    Unknown codes get a safe fallback: category service, retry helps, does NOT count and is
    not charged. Rationale: we cannot tell what Juhe judged, and a person must not lose an
    attempt to something we cannot explain; the operator text asks for a look at Juhe's order
    list in case it was billed.
    """
    if isinstance(code, str) and re.fullmatch(r"\s*-?\d+\s*", code):
        code = int(code)
    row = GUIDANCE.get(code) if code is not None else None
    if row is not None:
        return row
    return Guidance(
        code=code if code is not None else "unknown",
        meaning="未知错误",
        category=Category.SERVICE,
        retry_helps=True,
        charged=False,
        counts=False,
        final=False,
        person_zh="暂时无法完成核验，本次不计入次数。请稍后再录制一次。",
        person_en="We could not complete the check this time; this try does not count. "
                  "Please record again a little later.",
        operator=f"Unknown Juhe code {code!r}: not in Juhe's document. Treated as a "
                 "non-counting service error; check Juhe's order list in case it was billed.",
        problem_zh=UNKNOWN_PROBLEM[0],
        problem_en=UNKNOWN_PROBLEM[1],
    )
