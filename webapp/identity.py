"""The identity a person proves: resident ID number (GB 11643-1999) and name.

Validation answers with the field and a message a person can act on; masking is the only form
in which an identity leaves the request to Juhe (logs, API answers, pages).
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # birth dates are dates in China

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
# First two digits: the province-level division (GB/T 2260); 81/82/83 begin the residence
# permit numbers of Hong Kong, Macau and Taiwan residents, 71 is reserved for Taiwan.
_PROVINCES = frozenset(
    ["11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82", "83"])
_ID_RE = re.compile(r"[0-9]{17}[0-9X]")  # ASCII digits only: \d would take any script's
# Separators people type in minority names (维吾尔族 etc.): all become U+00B7 MIDDLE DOT.
_DOTS = str.maketrans(dict.fromkeys("•・‧∙⋅●．.﹒", "·"))
_NAME_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f]+(?:·[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f]+)*")


class IdentityError(ValueError):
    """One identity field is invalid. `field` is `idcard` or `realname`."""

    def __init__(self, field: str, message: str, message_zh: str):
        super().__init__(message)
        self.field = field
        self.message = message
        self.message_zh = message_zh


def check_digit(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


def normalize_idcard(value: str, *, today: dt.date | None = None) -> str:
    """Return the 18-character ID number (upper-case X) or raise IdentityError."""
    text = unicodedata.normalize("NFKC", str(value or "")).strip().replace(" ", "").upper()
    if not _ID_RE.fullmatch(text):
        raise IdentityError("idcard", "The ID number must be 18 characters: 17 digits and a digit or X.",
                            "身份证号应为18位：前17位是数字，最后一位是数字或X。")
    if text[:2] not in _PROVINCES:
        raise IdentityError("idcard", "The ID number's region code is not valid.",
                            "身份证号的地区码不正确，请核对。")
    try:
        born = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        born = None
    today = today or dt.datetime.now(CHINA).date()
    if born is None or born.year < 1900 or born > today:
        raise IdentityError("idcard", "The birth date inside the ID number is not valid.",
                            "身份证号中的出生日期不正确，请核对。")
    if check_digit(text[:17]) != text[17]:
        raise IdentityError("idcard", "The ID number's check digit does not match; please check for a typo.",
                            "身份证号校验位不符，请检查是否输错。")
    return text


def normalize_realname(value: str) -> str:
    """Return the name as Juhe expects it (Chinese characters, `·` between parts) or raise."""
    text = unicodedata.normalize("NFKC", str(value or "")).strip().translate(_DOTS)
    text = re.sub(r"\s*·\s*", "·", text)
    if not text:
        raise IdentityError("realname", "The name is required.", "请填写姓名。")
    if not _NAME_RE.fullmatch(text):
        raise IdentityError("realname",
                            "The name must be in Chinese characters as on the ID card; use · between "
                            "parts of a minority name.",
                            "姓名须与身份证一致，使用汉字；少数民族姓名各部分之间用“·”分隔。")
    letters = len(text.replace("·", ""))
    if letters < 2 or len(text) > 30:
        raise IdentityError("realname", "The name must be 2 to 30 characters long.",
                            "姓名长度应为2到30个字。")
    return text


def mask_idcard(idcard: str | None) -> str | None:
    """`110101199003070011` → `1101**********0011`."""
    if not idcard:
        return idcard
    return idcard[:4] + "*" * (len(idcard) - 8) + idcard[-4:] if len(idcard) > 8 else "*" * len(idcard)


def mask_realname(realname: str | None) -> str | None:
    """`张三` → `张*`, `阿依古丽·买买提` → `阿*******`: only the first character is kept."""
    if not realname:
        return realname
    return realname[0] + "*" * (len(realname) - 1)


@dataclass(frozen=True)
class Identity:
    """A validated identity. Its repr is masked so it can never leak into a log by accident."""

    realname: str
    idcard: str

    @classmethod
    def parse(cls, realname: str, idcard: str) -> Identity:
        """Validate both fields; raises IdentityError for the first invalid one (name first)."""
        return cls(normalize_realname(realname), normalize_idcard(idcard))

    @property
    def masked(self) -> dict[str, str | None]:
        return {"realname": mask_realname(self.realname), "idcard": mask_idcard(self.idcard)}

    def __repr__(self) -> str:
        return f"Identity(realname={mask_realname(self.realname)!r}, idcard={mask_idcard(self.idcard)!r})"

    __str__ = __repr__
