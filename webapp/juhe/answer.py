"""What one call to Juhe's antiFaceId sends and what comes back: the request, the two kinds of
answer, and Juhe's code table.

A call's answer is either a :class:`JuheResult` (every service-level answer: ``error_code`` 0 or
2675xx) or a :class:`JuheError` (HTTP errors, unreadable answers, system codes 100xx, timeouts,
no connection). Kept apart from the HTTP client (``webapp.juhe.client``) so that what an answer *says*
can be read, and tested, without sockets; what it means to a person is the product's business
(``webapp.guidance``), which reads these types, never the other way round.

Personal data: neither the full ID number, the name nor the video appear in reprs or messages.
"""
from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..identity import mask_idcard, mask_realname

LIVENESS_TYPES = (0, 1, 2)  # 0 silent, 1 number (4 digits read aloud), 2 action ("1,2"/"2,1")
CHARGED_CODES = frozenset({0, 267509})  # per Juhe's document: only these are billed
SERVICE_CODE_FLOOR = 200000  # codes below this (except 0) are system level (100xx)

# Juhe's old API versions answered system errors with `resultcode` 101..121 as well as (or,
# in very old gateways, instead of) `error_code` 10001..10021. We only fall back to it when
# `error_code` is absent, and only for the documented system codes.
_LEGACY_SYSTEM_CODES = {
    101: 10001, 102: 10002, 103: 10003, 104: 10004, 105: 10005, 107: 10007, 108: 10008,
    109: 10009, 111: 10011, 112: 10012, 113: 10013, 114: 10014, 120: 10020, 121: 10021,
}




@dataclass(frozen=True)
class VerifyRequest:
    """What one liveness call sends. The repr masks the identity and omits the video."""

    idcard: str
    realname: str
    video: bytes = field(repr=False)
    liveness_type: int
    validate_data: str | None  # "1234" for number mode, "1,2"/"2,1" for action mode
    best_frame: bool = False  # bestBase64=1
    best_frame_num: int | None = None  # bestFrameNum, 2..10

    def __post_init__(self) -> None:
        """Refuse what can never be a valid Juhe request (Juhe would answer 267503/267510)."""
        if self.liveness_type not in LIVENESS_TYPES or isinstance(self.liveness_type, bool):
            raise ValueError("liveness_type must be 0, 1 or 2")
        if self.best_frame_num is not None and (
            isinstance(self.best_frame_num, bool)
            or not isinstance(self.best_frame_num, int)
            or not 2 <= self.best_frame_num <= 10
        ):
            raise ValueError("best_frame_num must be an integer from 2 to 10")

    def __repr__(self) -> str:
        return (
            f"VerifyRequest(idcard={mask_idcard(self.idcard)!r}, "
            f"realname={mask_realname(self.realname)!r}, video=<{len(self.video)} bytes>, "
            f"liveness_type={self.liveness_type}, validate_data={self.validate_data!r}, "
            f"best_frame={self.best_frame}, best_frame_num={self.best_frame_num})"
        )

    __str__ = __repr__

    def form(self, key: str) -> dict[str, str]:
        """The form fields Juhe expects (application/x-www-form-urlencoded)."""
        fields = {
            "key": key,
            "idcard": self.idcard,
            "realname": self.realname,
            # Standard base64 (with + and /); the form encoding percent-escapes them.
            "videoBase64": base64.b64encode(self.video).decode("ascii"),
            "livenessType": str(self.liveness_type),
        }
        if self.liveness_type in (1, 2) and self.validate_data is not None:
            fields["validateData"] = self.validate_data
        if self.best_frame:
            fields["bestBase64"] = "1"
        if self.best_frame_num is not None:
            fields["bestFrameNum"] = str(self.best_frame_num)
        return fields  # never "videoUrl": the video always travels in the body


def _parse_score(value: Any) -> float | None:
    """Juhe's score as a float in [0, 100]; accepts numbers and numeric strings, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(score) or not 0.0 <= score <= 100.0:
        return None
    return score


@dataclass(frozen=True)
class JuheResult:
    """A service-level answer from Juhe (``error_code`` 0 or 2675xx)."""

    error_code: int
    reason: str
    orderid: str | None
    score: float | None
    best_base64: str | None = field(default=None, repr=False)
    best_list: tuple[str, ...] = field(default=(), repr=False)
    charged: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JuheResult:
        """Build from Juhe's decoded JSON. Raises ``ValueError`` when ``error_code`` is not an int.

        Tolerates ``result``/``res`` missing or null, the score as number or string,
        ``bestBase64`` null and ``bestList`` missing or null.
        """
        code = data.get("error_code")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError("error_code missing or not an integer")
        reason = data.get("reason")
        result = data.get("result")
        result = result if isinstance(result, Mapping) else {}
        res = result.get("res")
        res = res if isinstance(res, Mapping) else {}
        orderid = result.get("orderid")
        best = res.get("bestBase64")
        best_list = res.get("bestList")
        return cls(
            error_code=code,
            reason=reason if isinstance(reason, str) else ("" if reason is None else str(reason)),
            orderid=str(orderid) if orderid not in (None, "") else None,
            score=_parse_score(res.get("score")),
            best_base64=best if isinstance(best, str) and best else None,
            best_list=tuple(b for b in best_list if isinstance(b, str) and b)
            if isinstance(best_list, list) else (),
            charged=code in CHARGED_CODES,
        )

    def passed(self, pass_score: float) -> bool:
        """True when Juhe answered 0 and the similarity reaches ``pass_score``."""
        return self.error_code == 0 and self.score is not None and self.score >= pass_score


class JuheError(Exception):
    """Every way a call can fail to produce a service-level answer.

    ``kind``: ``"system"`` (system code 100xx; ``error_code`` set), ``"http"`` (status >= 300
    or a redirect), ``"invalid_response"`` (not JSON, not an object, no integer error_code, or
    error_code 0 without a usable score), ``"timeout"`` (no answer within the read timeout)
    or ``"connection"`` (no connection, or the connection dropped).
    ``reached`` is False only when no connection was ever made, so nothing can have been
    charged. ``orderid`` is kept when an unusable answer carried one (it may be billed).
    """

    def __init__(self, kind: str, reason: str, *, error_code: int | None = None,
                 reached: bool = True, http_status: int | None = None,
                 orderid: str | None = None) -> None:
        super().__init__(kind, reason)
        self.kind = kind
        self.reason = reason
        self.error_code = error_code
        self.reached = reached
        self.http_status = http_status
        self.orderid = orderid

    def __str__(self) -> str:
        code = f" {self.error_code}" if self.error_code is not None else ""
        return f"Juhe {self.kind}{code}: {self.reason}"

    def __repr__(self) -> str:
        return (f"JuheError(kind={self.kind!r}, error_code={self.error_code!r}, "
                f"reason={self.reason!r}, reached={self.reached!r})")


def legacy_code(value: Any) -> int | None:
    """Map a legacy ``resultcode`` ("101".."121") to its documented system code."""
    try:
        return _LEGACY_SYSTEM_CODES.get(int(str(value).strip()))
    except ValueError:
        return None
