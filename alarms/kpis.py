"""Alarm-load KPIs (ISA-18.2 / IEC 62682, EEMUA 191) from the alarm rows and the audit log.

What counts: an *activation* is an alarm annunciated to the operators, either a new alarm row
(at its `raised_at`) or a re-activation of an open one (audit `alarm.repeated`, at its time),
unless it was hidden at that moment: inhibition or maintenance (audit `alarm.suppressed` with
`activation` raise or repeat, see alarms.inhibit and alarms.maintenance), or a shelve or out of
service the point kept (`alarm.shelve` / `alarm.out_of_service` with `activation`, or
`alarm.suppressed` for a repeat, see alarms.points). Hidden activations are reported as
`suppressed` and nowhere else.

Periods are fixed intervals aligned to `from` (10 minutes, 1 hour); a shorter last interval
weighs by its length. Rates are per operator position: `positions` consoles share the load
equally. Definitions (domain/reference.md §1.2-1.3):
- peak 10-minute count: the most activations in any 10 minutes (a sliding window, so a burst
  across an interval edge counts whole)
- flood: begins with a 10-minute interval of more than 10 activations per position (ISA-18.2)
  and lasts until an interval has fewer than 5 (that interval is no longer in flood); % of time
  in flood is the flooded intervals' share of the window
- chattering: 3 or more activations of one (rule, source) within 60 s (third - first < 60 s)
- stale: condition continuously present for 24 h or more at `to`
- top contributors: the 10 (rule, source) with the most activations and their share of all

`grade` is an alarm's grade now (after escalations), not at the activation. Not for:
per-operator accounting (fmon does not know who sat at which console).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, cast, select
from sqlalchemy.orm import Session

from alarms.lifecycle import InvalidRequest
from core.domain import AlarmState
from storage.state.models import Alarm, AuditEntry

TEN_MINUTES, HOUR, DAY = timedelta(minutes=10), timedelta(hours=1), timedelta(days=1)
DEFAULT_SPAN, MAX_SPAN = DAY, timedelta(days=90)
FLOOD_PER_POSITION = 10  # more than this many in 10 minutes (ISA-18.2-2016)
FLOOD_ENDS_BELOW = 5  # a flood lasts until a 10-minute interval has fewer than this many (reference.md §1.2)
CHATTER_COUNT, CHATTER_WINDOW = 3, timedelta(minutes=1)
STALE_AFTER = timedelta(hours=24)
TOP = 10
HIDING_ACTIONS = ("alarm.suppressed", "alarm.shelve", "alarm.out_of_service")  # with `activation` in the detail
SUPPRESSION_SLACK = timedelta(hours=1)  # a suppression is audited with its activation, after at most the delay
MAX_POSITIONS = 100
STALE_ITEMS = 100  # listed; counted all

BENCHMARKS: dict[str, Any] = {
    "source": "ISA-18.2-2016 / IEC 62682:2022 Table 7; EEMUA 191 3rd ed. pp. 96-97 (reference.md §1.3)",
    "isa_18_2": {
        "alarms_per_day": {"target": 150, "maximum_manageable": 300},
        "alarms_per_hour": {"target": 6, "maximum_manageable": 12},
        "alarms_per_10min": {"target": 1, "maximum_manageable": 2},
        "max_alarms_in_10min": {"target_at_most": 10},
        "percent_time_in_flood": {"target_below": 1.0},
        "top10_share_percent": {"target_below": 5.0},
        "chattering": {"target": 0},
        "stale": {"target_below": 5},
        "priority_mix_percent": {"high": 5, "medium": 15, "low": 80},
    },
    "eemua_191": {
        "steady_state_per_10min": {"acceptable": "< 1", "manageable": "1 per 5 min",
                                   "over_demanding": "1 per 2 min", "unacceptable": "> 1 per min"},
        "first_10min_after_upset": {"manageable": "< 10", "difficult": "20-100", "excessive": "> 100"},
    },
}


@dataclass(frozen=True, slots=True)
class KpiWindow:
    """The period and scope of a KPI report; build it with `checked()`."""

    start: datetime
    end: datetime
    positions: int = 1
    site: str | None = None

    @classmethod
    def checked(cls, start: datetime | None, end: datetime | None, now: datetime, positions: int = 1,
                site: str | None = None) -> KpiWindow:
        """Defaults (to = now, from = to - 24 h) and checks; `InvalidRequest` names the bad parameter."""
        end = now if end is None else end
        start = end - DEFAULT_SPAN if start is None else start
        for name, value in (("from", start), ("to", end)):
            if value.tzinfo is None:
                raise InvalidRequest(f"{name} needs a UTC offset, e.g. 2026-11-21T08:00:00Z")
        if start >= end:
            raise InvalidRequest(f"from ({_iso(start)}) must be before to ({_iso(end)})")
        if end - start > MAX_SPAN:
            raise InvalidRequest(f"from..to spans {(end - start) / DAY:.1f} days; at most {MAX_SPAN.days} days")
        if end > now:
            raise InvalidRequest(f"to ({_iso(end)}) is in the future; leave it out to mean now")
        if not 1 <= positions <= MAX_POSITIONS:
            raise InvalidRequest(f"positions must be 1 to {MAX_POSITIONS}, not {positions}")
        return cls(start.astimezone(UTC), end.astimezone(UTC), positions, site)

    @property
    def span(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Activation:
    """One annunciation of an alarm."""

    at: datetime
    rule_id: str
    source: str
    grade: int


# --- the report -----------------------------------------------------------------------------------

def alarm_kpis(session: Session, window: KpiWindow) -> dict[str, Any]:
    """The KPI report of `window`, read from the state database."""
    activations, suppressed = load_activations(session, window)
    return report(activations, suppressed, stale_alarms(session, window), window)


def report(activations: Sequence[Activation], suppressed: int, stale: Sequence[dict[str, Any]],
           window: KpiWindow) -> dict[str, Any]:
    """The KPI report from activations already loaded (pure: testable with lists)."""
    per_10 = interval_counts((a.at for a in activations), window, TEN_MINUTES)
    per_hour = interval_counts((a.at for a in activations), window, HOUR)
    peak = peak_count([a.at for a in activations], window, TEN_MINUTES)
    contributors = top_contributors(activations)
    chatter = chattering(activations)
    stale_shown = sum(1 for s in stale if not s["suppressed"])
    result = {
        "window": {"from": _iso(window.start), "to": _iso(window.end), "hours": _round(window.span / HOUR),
                   "positions": window.positions, "site": window.site},
        "activations": len(activations), "suppressed": suppressed, "by_grade": by_grade(activations),
        "per_position": {"per_10min": rate(per_10, window, TEN_MINUTES, peak),
                         "per_hour": rate(per_hour, window, HOUR),
                         "per_day": {"average": _round(len(activations) / (window.span / DAY) / window.positions)}},
        "peak_10min_count": peak,
        "flood": flood(per_10, window),
        "top_contributors": contributors,
        "top10_share_percent": _round(100 * sum(c["count"] for c in contributors) / (len(activations) or 1)),
        "chattering": chatter,
        "stale": {"count": stale_shown, "suppressed": len(stale) - stale_shown, "items": list(stale[:STALE_ITEMS])},
        "benchmarks": BENCHMARKS,
    }
    result["assessment"] = assess(result)
    return result


def interval_counts(times: Iterable[datetime], window: KpiWindow, width: timedelta) -> list[int]:
    """Activations per fixed interval of `width` from `window.start` (the last one may be shorter)."""
    counts = [0] * math.ceil(window.span / width)
    for at in times:
        if window.start <= at < window.end:
            counts[(at - window.start) // width] += 1
    return counts


def peak_count(times: Sequence[datetime], window: KpiWindow, width: timedelta) -> int:
    """The most activations inside any span of `width` within the window (sliding, not interval-aligned)."""
    inside = sorted(at for at in times if window.start <= at < window.end)
    return densest(inside, width)[0]


def rate(counts: Sequence[int], window: KpiWindow, width: timedelta, peak: int | None = None) -> dict[str, float]:
    """Average and peak per position over intervals of `width` (`peak`: a sliding count to use instead)."""
    average = sum(counts) / (window.span / width) / window.positions
    top = max(counts, default=0) if peak is None else peak
    return {"average": _round(average), "peak": _round(top / window.positions)}


def flooded_intervals(per_10min: Sequence[int], positions: int) -> list[int]:
    """Indexes of the 10-minute intervals in flood: from one above 10 per position until one below 5."""
    flooded, in_flood = [], False
    for i, count in enumerate(per_10min):
        per_position = count / positions
        if per_position > FLOOD_PER_POSITION:
            in_flood = True
        elif per_position < FLOOD_ENDS_BELOW:
            in_flood = False
        if in_flood:
            flooded.append(i)
    return flooded


def flood(per_10min: Sequence[int], window: KpiWindow) -> dict[str, Any]:
    """The intervals in flood (with the ISA-18.2 hysteresis), the floods, and their share of the time."""
    flooded = flooded_intervals(per_10min, window.positions)
    last = len(per_10min) - 1
    seconds = sum((window.span - last * TEN_MINUTES if i == last else TEN_MINUTES).total_seconds() for i in flooded)
    in_flood = set(flooded)
    floods = sum(1 for i in flooded if i - 1 not in in_flood)  # the first interval of each flood
    return {"threshold_per_position": FLOOD_PER_POSITION, "ends_below_per_position": FLOOD_ENDS_BELOW,
            "intervals": len(per_10min), "flood_intervals": len(flooded), "floods": floods,
            "percent_time": _round(100 * seconds / window.span.total_seconds())}


def top_contributors(activations: Sequence[Activation], top: int = TOP) -> list[dict[str, Any]]:
    """The (rule, source) pairs with the most activations, most first (ties by rule, source)."""
    counts = Counter((a.rule_id, a.source) for a in activations)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [{"rule_id": rule_id, "source": source, "count": count,
             "share_percent": _round(100 * count / len(activations))} for (rule_id, source), count in ranked]


def chattering(activations: Sequence[Activation], at_least: int = CHATTER_COUNT,
               within: timedelta = CHATTER_WINDOW) -> list[dict[str, Any]]:
    """(rule, source) pairs with `at_least` activations inside some `within` span."""
    times: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for a in activations:
        times[(a.rule_id, a.source)].append(a.at)
    found = []
    for (rule_id, source), ats in sorted(times.items()):
        most, first = densest(sorted(ats), within)
        if most >= at_least:
            found.append({"rule_id": rule_id, "source": source, "max_in_1min": most, "activations": len(ats),
                          "first_at": _iso(first)})
    return sorted(found, key=lambda f: (-f["max_in_1min"], -f["activations"]))


def densest(ats: Sequence[datetime], within: timedelta) -> tuple[int, datetime | None]:
    """The most of the sorted times inside any span shorter than `within`, and where it starts."""
    most, first, lo = 0, None, 0
    for hi, at in enumerate(ats):
        while at - ats[lo] >= within:
            lo += 1
        if hi - lo + 1 > most:
            most, first = hi - lo + 1, ats[lo]
    return most, first


def by_grade(activations: Sequence[Activation]) -> dict[str, dict[str, float]]:
    """Activations per grade (the priority mix), count and percent."""
    counts = Counter(a.grade for a in activations)
    total = len(activations) or 1
    return {str(g): {"count": counts[g], "percent": _round(100 * counts[g] / total)} for g in (1, 2, 3, 4)}


def assess(result: dict[str, Any]) -> dict[str, Any]:
    """The report's figures against the ISA-18.2 targets and the EEMUA 191 bands."""
    rates, isa = result["per_position"], BENCHMARKS["isa_18_2"]
    figures = {  # name: (value, limit, the value must stay strictly below the limit)
        "alarms_per_day": (rates["per_day"]["average"], isa["alarms_per_day"]["target"], False),
        "alarms_per_hour": (rates["per_hour"]["average"], isa["alarms_per_hour"]["target"], False),
        "alarms_per_10min": (rates["per_10min"]["average"], isa["alarms_per_10min"]["target"], False),
        "max_alarms_in_10min": (rates["per_10min"]["peak"], isa["max_alarms_in_10min"]["target_at_most"], False),
        "percent_time_in_flood": (result["flood"]["percent_time"], isa["percent_time_in_flood"]["target_below"], True),
        "top10_share_percent": (result["top10_share_percent"], isa["top10_share_percent"]["target_below"], True),
        "chattering": (len(result["chattering"]), isa["chattering"]["target"], False),
        "stale": (result["stale"]["count"], isa["stale"]["target_below"], True),
    }
    return {
        "isa_18_2": {name: {"value": value, "within_target": value < limit if strict else value <= limit}
                     for name, (value, limit, strict) in figures.items()},
        "eemua_191": {"steady_state": steady_state_band(rates["per_10min"]["average"]),
                      "peak_10min": upset_band(rates["per_10min"]["peak"])},
    }


def steady_state_band(per_10min: float) -> str:
    """EEMUA 191's steady-state band of an average rate (between the published points: the worse band)."""
    if per_10min < 1:
        return "acceptable"
    if per_10min <= 2:
        return "manageable"
    return "over_demanding" if per_10min <= 10 else "unacceptable"


def upset_band(peak_10min: float) -> str:
    """EEMUA 191's band for the alarms in the first 10 minutes after an upset, applied to the peak."""
    if peak_10min < 10:
        return "manageable"
    return "difficult" if peak_10min <= 100 else "excessive"


# --- reading the database -------------------------------------------------------------------------

def load_activations(session: Session, window: KpiWindow) -> tuple[list[Activation], int]:
    """The annunciated activations of `window` and how many more inhibition hid."""
    hidden_raises, hidden_repeats = _hidden(session, window)
    raised = session.execute(select(Alarm.id, Alarm.raised_at, Alarm.rule_id, Alarm.source, Alarm.grade).where(
        Alarm.raised_at >= window.start, Alarm.raised_at < window.end, *_site(window))).all()
    repeated = session.execute(
        select(Alarm.id, AuditEntry.at, Alarm.rule_id, Alarm.source, Alarm.grade)
        .join(Alarm, AuditEntry.entity_id == cast(Alarm.id, String))
        .where(AuditEntry.entity_type == "alarm", AuditEntry.action == "alarm.repeated",
               AuditEntry.at >= window.start, AuditEntry.at < window.end, *_site(window))).all()
    shown = [Activation(at, rule, source, grade) for alarm_id, at, rule, source, grade in raised
             if alarm_id not in hidden_raises]
    shown += [Activation(at, rule, source, grade) for alarm_id, at, rule, source, grade in repeated
              if (alarm_id, at) not in hidden_repeats]
    return sorted(shown, key=lambda a: a.at), len(raised) + len(repeated) - len(shown)


def _hidden(session: Session, window: KpiWindow) -> tuple[set[int], set[tuple[int, datetime]]]:
    """Alarms suppressed as they were raised, and (alarm, time) of re-activations suppressed as they happened."""
    rows = session.execute(select(AuditEntry.entity_id, AuditEntry.at, AuditEntry.detail).where(
        AuditEntry.entity_type == "alarm", AuditEntry.action.in_(HIDING_ACTIONS),
        AuditEntry.at >= window.start, AuditEntry.at < window.end + SUPPRESSION_SLACK)).all()
    raises = {int(entity) for entity, _at, detail in rows if detail.get("activation") == "raise"}
    repeats = {(int(entity), at) for entity, at, detail in rows if detail.get("activation") == "repeat"}
    return raises, repeats


def stale_alarms(session: Session, window: KpiWindow) -> list[dict[str, Any]]:
    """Alarms whose condition had been present for 24 h or more at `window.end`, oldest first."""
    still = ((Alarm.cleared_at.is_(None) & (Alarm.state != AlarmState.NORMAL.value))
             | (Alarm.cleared_at > window.end))
    query = select(Alarm).where(Alarm.raised_at <= window.end - STALE_AFTER, still, *_site(window))
    return [{"id": a.id, "rule_id": a.rule_id, "source": a.source, "raised_at": _iso(a.raised_at),
             "hours_active": _round((window.end - a.raised_at) / HOUR), "suppressed": a.suppressed_by is not None}
            for a in session.scalars(query.order_by(Alarm.raised_at, Alarm.id))]


def _site(window: KpiWindow) -> list[ColumnElement[bool]]:
    return [] if window.site is None else [Alarm.site == window.site]


def _round(value: float) -> float:
    return round(value, 3)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
