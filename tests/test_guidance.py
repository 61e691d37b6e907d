"""The guidance table covers every code of Juhe's document and speaks kindly to people."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from webapp.guidance import GUIDANCE, LOW_SCORE, Category, Guidance, guidance_for, guidance_key
from webapp.juhe.answer import JuheError, JuheResult

VENDORED = Path(__file__).resolve().parents[1] / "docs" / "vendor" / "juhe-antiFaceId-api.txt"


def vendor_document() -> str:
    """Juhe's own document: the shared folder's copy beside the repository when there is one
    (it must equal ours), else the copy kept in docs/vendor/."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "shared", Path.cwd() / ".." / "shared"):
        path = candidate / "juhe-antiFaceId-api.txt"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert text == VENDORED.read_text(encoding="utf-8"), "docs/vendor copy is out of date"
            return text
    return VENDORED.read_text(encoding="utf-8")


def document_codes() -> dict[int, str]:
    """code -> Juhe's wording, parsed from the document's two error tables."""
    text = vendor_document()
    service = {int(c): m.strip() for c, m in re.findall(r"^(2675\d\d) (.+)$", text, re.M)}
    # "10001 错误的请求KEY 101": the trailing number is the old resultcode. 10014's wording
    # wraps onto the next lines, so its own line holds the code only.
    system = {int(c): m.strip() for c, m in
              re.findall(r"^(100\d\d)\b ?(.*?)(?: \d{3})?$", text, re.M)}
    return {**service, **system}


DOC = document_codes()
SERVICE = sorted(c for c in DOC if c >= 200000)
SYSTEM = sorted(c for c in DOC if c < 200000)
OWN = ["low_score", "juhe_timeout", "juhe_unreachable", "juhe_invalid_response",
       "challenge_expired", "upload_too_large", "interrupted", "service_interrupted"]
NOT_COUNTING_SERVICE = {267501, 267508, 267522, 267535, 267545,  # docs/contract.md
                        267502, 267503, 267506, 267507, 267510,  # our request was malformed
                        267523, 267524, 267525}  # download/decrypt: Juhe judged nothing
FINAL = {267504, 267505, 267509, 267526, 267527, 267528}


def test_the_document_was_parsed_completely():
    assert list(range(267501, 267550)) == SERVICE
    assert SYSTEM == [10001, 10002, 10003, 10004, 10005, 10007, 10008, 10009, 10011, 10012,
                      10013, 10014, 10020, 10021]


@pytest.mark.parametrize("code", SERVICE + SYSTEM + [0] + OWN)
def test_every_code_has_a_complete_entry(code):
    row = GUIDANCE[code]
    assert isinstance(row, Guidance) and row.code == code
    assert isinstance(row.category, Category)
    for text in (row.meaning, row.person_zh, row.person_en, row.operator):
        assert text.strip()


@pytest.mark.parametrize("code", SERVICE + SYSTEM)
def test_the_meaning_is_juhes_own_wording(code):
    if code == 10014:
        assert GUIDANCE[code].meaning.startswith("系统内部异常(调用充值类业务时")
    else:
        assert GUIDANCE[code].meaning == DOC[code]


@pytest.mark.parametrize("code", list(GUIDANCE))
def test_people_never_see_codes_or_keys(code):
    row = GUIDANCE[code]
    for text in (row.person_zh, row.person_en):
        assert not re.search(r"\d{5,}", text), text
        assert not re.search(r"key|密钥|秘钥", text, re.I), text
    assert re.search(r"[\u4e00-\u9fff]", row.person_zh) and re.search(r"[A-Za-z]", row.person_en)


def test_only_a_judgement_and_a_name_mismatch_are_charged():
    charged = {code for code, row in GUIDANCE.items() if row.charged}
    assert charged == {0, 267509, "low_score"}  # low_score is an error_code 0 answer


def test_attempts_count_only_when_juhe_judged_the_video_or_identity():
    for code in SERVICE:
        assert GUIDANCE[code].counts is (code not in NOT_COUNTING_SERVICE), code
    for code in SYSTEM:
        assert not GUIDANCE[code].counts
    assert GUIDANCE[0].counts and GUIDANCE["low_score"].counts
    for key in OWN[1:]:
        assert not GUIDANCE[key].counts


def test_only_answers_no_retry_can_change_are_final():
    assert {code for code, row in GUIDANCE.items() if row.final} == FINAL
    for code in FINAL:
        assert not GUIDANCE[code].retry_helps and GUIDANCE[code].category is Category.IDENTITY


def test_system_codes_tell_people_to_come_back_later():
    for code in SYSTEM:
        row = GUIDANCE[code]
        assert row.category in (Category.CONFIGURATION, Category.SERVICE)
        assert "服务暂时不可用，请稍后再试" in row.person_zh
    assert "KEY" in GUIDANCE[10001].operator or "key" in GUIDANCE[10001].operator
    assert "whitelist" in GUIDANCE[10008].operator and "quota" in GUIDANCE[10012].operator


@pytest.mark.parametrize("code, words", [
    (267517, ["明亮", "光"]), (267518, ["避开", "均匀"]), (267512, ["远一点", "椭圆"]),
    (267513, ["近一点"]), (267539, ["大声", "数字"]), (267540, ["大声", "数字"]),
    (267549, ["2秒", "6秒"]), (267511, ["顺序"]), (267516, ["顺序"]), (267520, ["顺序"]),
    (267534, ["顺序"]), (267529, ["只有您本人"]), (267533, ["口罩"]),
])
def test_capture_advice_says_what_to_do(code, words):
    row = GUIDANCE[code]
    assert row.category is Category.CAPTURE and row.retry_helps and row.counts
    for word in words:
        assert word in row.person_zh


def test_capture_advice_in_english_too():
    assert "bright" in GUIDANCE[267517].person_en
    assert "further away" in GUIDANCE[267512].person_en
    assert "loudly" in GUIDANCE[267539].person_en
    assert "order" in GUIDANCE[267511].person_en


def test_a_pass_says_passed():
    assert "通过" in GUIDANCE[0].person_zh and not GUIDANCE[0].final


def test_lookup_by_numeric_string_and_fallback_for_unknown_codes():
    assert guidance_for("267517") is GUIDANCE[267517]
    assert guidance_for(10012) is GUIDANCE[10012]
    for unknown in (267599, 999999, "something_new", None):
        row = guidance_for(unknown)
        assert row.category is Category.SERVICE and row.retry_helps
        assert not row.counts and not row.charged and not row.final
        assert row.person_zh and row.person_en and row.operator
        assert not re.search(r"\d{5,}", row.person_zh + row.person_en)


@pytest.mark.parametrize("code", SERVICE + SYSTEM + OWN)
def test_every_problem_has_a_few_words_in_both_languages(code):
    """The capture page names the last problem with these words (no splitting of the advice)."""
    row = GUIDANCE[code]
    assert row.problem_zh and row.problem_en, code
    assert len(row.problem_zh) <= 12 and len(row.problem_en) <= 45, (row.problem_zh, row.problem_en)
    assert not re.search(r"[：:。.]", row.problem_zh + row.problem_en), code


def test_an_unknown_code_has_problem_words_too():
    row = guidance_for(999999)
    assert row.problem_zh == "未知错误" and row.problem_en


def test_only_an_empty_or_unreadable_file_makes_the_page_record_another_way():
    """The page changes its recorder type after these two answers, and after no other: a dark
    room or a covered face is the person's to change, not the browser's."""
    assert {g.code for g in GUIDANCE.values() if g.recording_broken} == {267536, 267537}


@pytest.mark.parametrize("answer, key", [
    (JuheResult(0, "成功", "o1", 80.0, charged=True), 0),
    (JuheResult(0, "成功", "o1", 70.0, charged=True), 0),  # the pass line itself passes
    (JuheResult(0, "成功", "o1", 69.9, charged=True), LOW_SCORE),
    (JuheResult(267509, "不一致", "o1", None, charged=True), 267509),
    (JuheResult(267517, "动作", None, None), 267517),
    (JuheError("system", "key", error_code=10001), 10001),
    (JuheError("timeout", "slow"), "juhe_timeout"),
    (JuheError("connection", "refused", reached=False), "juhe_unreachable"),
    (JuheError("http", "HTTP 502"), "juhe_invalid_response"),
    (JuheError("invalid_response", "0 without score", orderid="o2"), "juhe_invalid_response"),
])
def test_every_answer_maps_to_one_guidance_row(answer, key):
    """guidance_key is the one mapping from an answer to what the person and operator read."""
    assert guidance_key(answer, 70.0) == key and key in GUIDANCE
    assert guidance_for(key) is GUIDANCE[key]


def test_a_low_score_is_the_row_that_asks_for_another_try():
    row = guidance_for(guidance_key(JuheResult(0, "成功", "o1", 10.0, charged=True), 70.0))
    assert row.code == LOW_SCORE and row.retry_helps and row.counts and row.charged
