"""The failure funnel an operator reads in the console: what became of the attempts that reached
Juhe over a period, by code and by browser family / OS, with the number of paid calls.

Flask-free. Read from the database (attempts of this operator's sessions that were sent to Juhe);
`service_outcomes` adds what only the Prometheus counters know: every upload's outcome, those
the local checks refused included (they are no attempt, so the database keeps none),
service-wide since the processes started.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..clients import OTHER
from ..guidance import guidance_for
from ..storage import Attempt, VerificationSession, isoformat
from ..vocabulary import AttemptState

PASSED = "0"
TOP_CODES = 6  # the chart stacks the most frequent failure codes, the rest as "other"


def label(code: str) -> str:
    """A code as the console names it: Juhe's own wording (or ours) after the code."""
    return guidance_for(code).meaning


def compute(db: Session, operator: str, since: dt.datetime, until: dt.datetime) -> dict:
    """The funnel of `operator`'s attempts started in [since, until)."""
    query = (select(Attempt.outcome, Attempt.browser, Attempt.os, Attempt.charged, func.count())
             .join(VerificationSession, VerificationSession.id == Attempt.session_id)
             .where(VerificationSession.operator == operator, Attempt.state == AttemptState.DONE,
                    Attempt.started_at >= since, Attempt.started_at < until)
             .group_by(Attempt.outcome, Attempt.browser, Attempt.os, Attempt.charged))
    codes: Counter[str] = Counter()
    paid_by_code: Counter[str] = Counter()
    by_client: dict[tuple[str, str], Counter] = defaultdict(Counter)
    by_os: dict[str, Counter] = defaultdict(Counter)
    paid = unknown = 0
    for outcome, browser, system, charged, n in db.execute(query):
        outcome, browser, system = outcome or "unknown", browser or OTHER, system or OTHER
        codes[outcome] += n
        by_client[(browser, system)][outcome] += n
        by_os[system][outcome] += n
        if charged:
            paid += n
            paid_by_code[outcome] += n
        elif charged is None:
            unknown += n
    failures = Counter({c: n for c, n in codes.items() if c != PASSED})
    stacked = [c for c, _ in failures.most_common(TOP_CODES)]
    return {
        "since": isoformat(since), "until": isoformat(until),
        "attempts": sum(codes.values()), "passed": codes[PASSED], "paid": paid, "charge_unknown": unknown,
        "codes": [{"code": c, "label": label(c), "count": n, "paid": paid_by_code[c]}
                  for c, n in codes.most_common()],
        "stacked": [{"code": c, "label": label(c)} for c in stacked],
        "clients": _groups({f"{b} · {o}": v for (b, o), v in by_client.items()}, stacked),
        "systems": _groups(dict(by_os), stacked),
    }


def _groups(groups: dict[str, Counter], stacked: list[str]) -> list[dict]:
    """Per browser (or OS), biggest first: totals, each stacked code's count, the top failure."""
    rows = []
    for name, outcomes in sorted(groups.items(), key=lambda item: -sum(item[1].values())):
        total = sum(outcomes.values())
        failed = Counter({c: n for c, n in outcomes.items() if c != PASSED})
        top = failed.most_common(1)
        rows.append({
            "name": name, "attempts": total, "passed": outcomes[PASSED], "failed": sum(failed.values()),
            "counts": {c: outcomes[c] for c in stacked},
            "other": sum(n for c, n in failed.items() if c not in stacked),
            "top": ({"code": top[0][0], "label": label(top[0][0]), "count": top[0][1],
                     "share": round(100 * top[0][1] / total)} if top else None),
        })
    return rows


def service_outcomes() -> list[dict]:
    """Every upload's outcome by code from the Prometheus counters, refused-before-Juhe ones
    included (the database keeps no attempt for those): every worker's under gunicorn's
    multiprocess mode, this process's otherwise; service-wide, since the processes started."""
    from .. import metrics
    counts: Counter[str] = Counter()
    for family in metrics.registry().collect():
        if family.name == "liveness_verifications":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["outcome"]] += int(sample.value)
    return [{"code": c, "label": label(c), "count": int(n)} for c, n in counts.most_common() if n]
