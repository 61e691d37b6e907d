"""What the console's session list asks of the database, and the CSV files it hands out.

Flask-free: webapp.web.console reads the request into a `Search` (`parse`), shows one `Page` of its
sessions, or writes all of them (up to EXPORT_CAP) as CSV; the failure funnel's tables are
written the same way (`funnel_csv`).

A search is the query string of a GET form, so an operator can bookmark or share it; it only
ever looks at the signed-in operator's sessions. Dates are whole days in UTC, as the console
prints every time (`console_time`): "to" includes its day. The order is newest first, ties
broken by id, so paging never shows a session twice or skips one while nothing new arrives.

The CSV files open in Excel as they are: UTF-8 with a BOM (else Excel reads the Chinese as
GBK), identity masked as in the list, and any text cell that a spreadsheet would run as a
formula (= + - @, or a tab / carriage return before one) starts with an apostrophe.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from ..storage import VerificationSession, isoformat
from ..vocabulary import AttemptState, SessionStatus

PAGE_SIZE = 25
EXPORT_CAP = 10_000
BOM = "\ufeff"

# Every session status in the console's words: Chinese, then English (the console's bilingual
# style). The one place the console names a status; a value missing here is shown as it is.
STATUS_WORDS: dict[str, tuple[str, str]] = {
    SessionStatus.PENDING: ("待完成", "pending"),
    SessionStatus.PASSED: ("已通过", "passed"),
    SessionStatus.FAILED: ("未通过", "failed"),
    SessionStatus.EXPIRED: ("已过期", "expired"),
}

SESSION_COLUMNS = ("id", "reference", "name_masked", "idcard_masked", "status", "created_utc",
                   "finished_utc", "attempts", "last_outcome_code", "score", "charged")
FUNNEL_COLUMNS = ("table", "name", "label", "attempts", "passed", "paid", "top_failure_code",
                  "top_failure_label", "top_failure_share_percent")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Search:
    """The filters of one search, as typed (blank: no filter); dates parsed."""

    reference: str = ""
    session_id: str = ""
    status: str = ""
    created_from: dt.date | None = None
    created_to: dt.date | None = None
    page: int = 1
    # The form's own values, to fill it in again and to keep in the paging links.
    args: dict[str, str] = field(default_factory=dict)

    def link(self, **changes: object) -> dict[str, str]:
        """The query string of this search with `changes` (e.g. page=2); blanks left out."""
        merged = {**self.args, **{k: str(v) for k, v in changes.items()}}
        return {k: v for k, v in merged.items() if v and not (k == "page" and v == "1")}


@dataclass(frozen=True)
class Page:
    """One page of a search's sessions: rows for the list, where they sit in the whole."""

    rows: list[dict]
    total: int
    number: int
    pages: int

    @property
    def first(self) -> int:
        return (self.number - 1) * PAGE_SIZE + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def parse(args: Mapping[str, str]) -> tuple[Search, list[str]]:
    """The search a query string asks for, and what is wrong with it (bilingual sentences for
    the page; empty when nothing is). A wrong value is never half-applied: the caller shows the
    errors instead of results."""
    def text(name: str) -> str:
        return (args.get(name) or "").strip()

    kept = {name: text(name) for name in ("reference", "id", "status", "from", "to", "page")}
    errors = []
    status = kept["status"]
    if status and status not in STATUS_WORDS:
        errors.append(f"未知的状态“{status}”：请从列表中选择。 Unknown status “{status}”: pick one from the list.")
    dates = {}
    for name, zh, en in (("from", "起始日期", "From date"), ("to", "截止日期", "To date")):
        dates[name] = _date(kept[name])
        if kept[name] and dates[name] is None:
            errors.append(f"{zh}“{kept[name]}”无法识别：请写成 2026-01-31。 "
                          f"{en} “{kept[name]}” is not a date: write it as 2026-01-31.")
    if dates["from"] and dates["to"] and dates["from"] > dates["to"]:
        errors.append("起始日期晚于截止日期。 The from date is after the to date.")
    page = 1
    if kept["page"]:
        if kept["page"].isdigit() and 0 < int(kept["page"]) < 10**9:
            page = int(kept["page"])
        else:
            errors.append(f"页码“{kept['page']}”无效。 Page “{kept['page']}” is not a page number.")
    search = Search(reference=kept["reference"], session_id=kept["id"], status=status,
                    created_from=dates["from"], created_to=dates["to"], page=page,
                    args={k: v for k, v in kept.items() if k != "page"})
    return search, errors


def _date(value: str) -> dt.date | None:
    """A YYYY-MM-DD date (what <input type=date> sends) with a following day; else None."""
    if not _DATE.fullmatch(value):
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return None if day == dt.date.max else day  # 9999-12-31 has no following day to search to


def query(operator: str, search: Search) -> Select:
    """`operator`'s sessions matching `search`, newest first (ties by id)."""
    s = VerificationSession
    stmt = select(s).where(s.operator == operator)
    if search.reference:
        stmt = stmt.where(s.reference.icontains(search.reference, autoescape=True))
    if search.session_id:  # exact or a prefix of it
        stmt = stmt.where(s.id.startswith(search.session_id, autoescape=True))
    if search.status:
        stmt = stmt.where(s.status == search.status)
    if search.created_from:
        stmt = stmt.where(s.created_at >= _midnight(search.created_from))
    if search.created_to:
        stmt = stmt.where(s.created_at < _midnight(search.created_to + dt.timedelta(days=1)))
    return stmt.order_by(s.created_at.desc(), s.id.desc())


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())  # naive UTC, as the columns store it


def count(db: Session, operator: str, search: Search) -> int:
    return db.scalar(select(func.count()).select_from(query(operator, search).order_by(None).subquery())) or 0


def page(db: Session, operator: str, search: Search) -> Page:
    """The page `search.page` asks for; past the last page, the last page."""
    total = count(db, operator, search)
    pages = max(1, -(-total // PAGE_SIZE))
    number = min(search.page, pages)
    found = db.scalars(query(operator, search).options(selectinload(VerificationSession.attempts))
                       .offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    return Page([summary(s) for s in found], total, number, pages)


def summary(s: VerificationSession) -> dict:
    """A session as the list and the CSV show it: identity masked, its attempts summed up."""
    done = [a for a in s.attempts if a.state == AttemptState.DONE]
    last = done[-1] if done else None
    return {"id": s.id, "created_at": s.created_at, "completed_at": s.completed_at,
            "reference": s.reference, "realname": s.realname_masked, "idcard": s.idcard_masked,
            "mode": s.mode, "status": s.status, "attempts": len(done),
            "paid": sum(bool(a.charged) for a in s.attempts),
            "last_code": last.outcome if last else None, "score": last.score if last else None}


def export(db: Session, operator: str, search: Search, cap: int = EXPORT_CAP) -> str:
    """Every session of the search (not just one page), up to `cap`, as CSV text (BOM first).
    When there are more, a last line starting with "#" says so."""
    total = count(db, operator, search)
    found = db.scalars(query(operator, search).options(selectinload(VerificationSession.attempts))
                       .limit(cap)).all()
    lines: list[tuple] = [SESSION_COLUMNS]
    for s in found:
        row = summary(s)
        lines.append((row["id"], row["reference"], row["realname"], row["idcard"], row["status"],
                      isoformat(row["created_at"]), isoformat(row["completed_at"]), row["attempts"],
                      row["last_code"], row["score"], row["paid"]))
    if total > cap:
        lines.append((f"# 只导出了前 {cap} 条，共 {total} 条：请缩小搜索范围。 "
                      f"Only the first {cap} of {total} sessions are here: narrow the search.",))
    return write(lines)


def funnel_csv(data: dict) -> str:
    """The failure funnel's tables (webapp.web.funnel.compute) in one CSV: by code, by browser · OS,
    by OS, told apart by the first column."""
    lines: list[tuple] = [FUNNEL_COLUMNS]
    for c in data["codes"]:
        lines.append(("code", c["code"], c["label"], c["count"], None, c["paid"], None, None, None))
    for table, groups in (("browser_os", data["clients"]), ("os", data["systems"])):
        for g in groups:
            top = g["top"] or {}
            lines.append((table, g["name"], None, g["attempts"], g["passed"], None,
                          top.get("code"), top.get("label"), top.get("share")))
    return write(lines)


DROP_OFF_COLUMNS = ("scope", "step", "step_zh", "people", "share_of_step_before", "stopped_here", "top_reasons")


def drop_off_csv(drop: dict) -> str:
    """The drop-off funnel (webapp.page_events.compute) in one CSV: every step for everyone
    ("all"), then for each browser family · OS, with the top reasons of those who stopped."""
    lines: list[tuple] = [DROP_OFF_COLUMNS]
    for scope, steps in [("all", drop["steps"])] + [(c["name"], c["steps"]) for c in drop["clients"]]:
        for step in steps:
            lines.append((scope, step["step"], step["zh"], step["count"], step["share"], step["stopped"],
                          "; ".join(f"{r['label']} ({r['count']})" for r in step["reasons"]) or None))
    return write(lines)


def write(lines: Iterable[Iterable[object]]) -> str:
    """CSV text with a BOM; None as an empty cell; text guarded against formulas."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    for line in lines:
        writer.writerow(["" if v is None else _guard(v) if isinstance(v, str) else v for v in line])
    return out.getvalue()


def _guard(value: str) -> str:
    """A cell a spreadsheet would run as a formula, kept as text (OWASP's CSV injection advice)."""
    return "'" + value if value.startswith(_FORMULA) else value
