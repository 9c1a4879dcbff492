"""When to score and when to retrain: a pure planner over what ran last and how the data grew.

`plan(now, runs, data, policy)` returns the jobs due at `now`: retrain first (no model yet, the
model is older than `retrain_every`, the labelled history grew by `growth` since training, or
`new_failures` failures were recorded since), then one scoring job per completed UTC day not yet
scored (at most `catch_up_days`, oldest first), from `score_after` past midnight on. It does no I/O and
reads no clock: runtime wires it to a timer, the artifact's sidecar and the run log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

JobKind = Literal["train", "score"]


@dataclass(frozen=True, slots=True)
class JobPolicy:
    retrain_every: timedelta = timedelta(days=7)
    growth: float = 0.25  # retrain when the labelled rows grew by this fraction since training
    new_failures: int = 5  # ... or this many failures were recorded since
    score_after: time = time(0, 30)  # UTC time of day after which yesterday is scored (late data settles)
    catch_up_days: int = 7  # score at most this many missed days


@dataclass(frozen=True, slots=True)
class Runs:
    """What ran last: the artifact's creation and training size, the last scored day."""

    model_created_at: datetime | None = None
    rows_at_training: int = 0
    failures_at_training: int = 0
    last_scored_day: date | None = None


@dataclass(frozen=True, slots=True)
class DataState:
    rows: int  # labelled feature rows available now
    failures: int  # failure events recorded now


@dataclass(frozen=True, slots=True)
class Job:
    kind: JobKind
    reason: str
    day: date | None = None  # the day to score (end of that UTC day)


def plan(now: datetime, runs: Runs, data: DataState, policy: JobPolicy = JobPolicy()) -> list[Job]:
    """Jobs due at `now` (timezone-aware), in the order to run them."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    jobs = []
    reason = retrain_reason(now, runs, data, policy)
    if reason is not None:
        jobs.append(Job("train", reason))
    if runs.model_created_at is None and not jobs:
        return []
    return jobs + [Job("score", "daily risk scores", day) for day in days_to_score(now, runs, policy)]


def retrain_reason(now: datetime, runs: Runs, data: DataState, policy: JobPolicy) -> str | None:
    if runs.model_created_at is None:
        return "no model yet" if data.failures > 0 else None
    age = now - runs.model_created_at
    if age >= policy.retrain_every:
        return f"model is {age.days} days old (retrain every {policy.retrain_every.days})"
    if runs.rows_at_training and data.rows >= runs.rows_at_training * (1 + policy.growth):
        return f"history grew from {runs.rows_at_training} to {data.rows} rows"
    if data.failures - runs.failures_at_training >= policy.new_failures:
        return f"{data.failures - runs.failures_at_training} new failures since training"
    return None


def days_to_score(now: datetime, runs: Runs, policy: JobPolicy) -> list[date]:
    """Completed UTC days after the last scored one (yesterday only once `score_after` has passed)."""
    utc = now.astimezone(UTC)
    last_complete = utc.date() - timedelta(days=1 if utc.time() >= policy.score_after else 2)
    first = last_complete - timedelta(days=policy.catch_up_days - 1)
    if runs.last_scored_day is not None:
        first = max(first, runs.last_scored_day + timedelta(days=1))
    return [first + timedelta(days=i) for i in range((last_complete - first).days + 1)]


def next_due(now: datetime, runs: Runs, policy: JobPolicy = JobPolicy()) -> datetime:
    """When the planner next has something to do, data growth aside: the next scoring time or retrain age."""
    utc = now.astimezone(UTC)
    if runs.model_created_at is not None and days_to_score(now, runs, policy):
        return utc
    score_at = datetime.combine(utc.date(), policy.score_after, tzinfo=UTC)
    if score_at <= utc:
        score_at += timedelta(days=1)
    if runs.model_created_at is None:
        return score_at
    return min(score_at, max(utc, runs.model_created_at + policy.retrain_every))
