"""ID number and name validation (GB 11643) and masking."""
import datetime as dt

import pytest

from webapp.identity import (
    CHINA,
    Identity,
    IdentityError,
    check_digit,
    mask_idcard,
    mask_realname,
    normalize_idcard,
    normalize_realname,
)


def make_id(first17: str) -> str:
    return first17 + check_digit(first17)


def test_known_valid_number_passes_and_x_is_uppercased():
    # 11010519491231002X is the standard's own example.
    assert normalize_idcard("11010519491231002x") == "11010519491231002X"
    assert normalize_idcard(" 110105 19491231 002X ") == "11010519491231002X"


@pytest.mark.parametrize("value, fragment", [
    ("", "18"), ("1101051949123100", "18"), ("11010519491231002Y", "18"),
    ("11010519491231002A", "18"),
    ("99" + "0105194912310021", "地区"),
])
def test_malformed_numbers_are_refused_with_a_reason(value, fragment):
    with pytest.raises(IdentityError) as err:
        normalize_idcard(value)
    assert err.value.field == "idcard"
    assert fragment in err.value.message_zh or fragment in err.value.message


def test_wrong_check_digit_is_a_typo():
    good = make_id("11010119900307001")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(IdentityError, match="check digit"):
        normalize_idcard(bad)


@pytest.mark.parametrize("birth", ["19900230", "18991231", "19901301"])
def test_impossible_birth_dates_are_refused(birth):
    with pytest.raises(IdentityError, match="birth date"):
        normalize_idcard(make_id("110101" + birth + "001"))


def test_birth_date_in_the_future_is_refused():
    tomorrow = dt.datetime.now(CHINA).date() + dt.timedelta(days=1)  # the date in China decides
    with pytest.raises(IdentityError, match="birth date"):
        normalize_idcard(make_id("110101" + tomorrow.strftime("%Y%m%d") + "001"))


@pytest.mark.parametrize("value, expected", [
    ("张三", "张三"), (" 欧阳娜娜 ", "欧阳娜娜"),
    ("阿依古丽·买买提", "阿依古丽·买买提"),
    ("阿依古丽•买买提", "阿依古丽·买买提"),     # bullet typed on phones
    ("阿依古丽.买买提", "阿依古丽·买买提"),
    ("阿依古丽 · 买买提", "阿依古丽·买买提"),
])
def test_names_accept_chinese_and_the_minority_dot(value, expected):
    assert normalize_realname(value) == expected


@pytest.mark.parametrize("value", ["", "张", "Zhang San", "张3", "·张三", "张三·", "张··三", "张" * 31, "<b>张三</b>"])
def test_bad_names_are_refused(value):
    with pytest.raises(IdentityError) as err:
        normalize_realname(value)
    assert err.value.field == "realname"


def test_masks_keep_only_what_identifies_nobody():
    assert mask_idcard("110101199003070011") == "1101**********0011"
    assert mask_realname("张三") == "张*"
    assert mask_realname("阿依古丽·买买提") == "阿" + "*" * 7


def test_identity_repr_never_shows_the_clear_identity():
    ident = Identity.parse("张三", make_id("11010119900307001"))
    text = repr(ident) + str(ident) + f"{ident}"
    assert ident.idcard not in text and "张三" not in text
    assert "1101**********" in text
