"""Who is told about an alarm: routes, the on-duty roster, quiet hours and the response clocks.

Pure functions of the notification configuration, an alarm's facts (site, category, grade) and
a time; no I/O and no clock of its own, so the same question always gets the same answer —
which is what lets `alarms.escalation` recompute its decisions after a restart.
Not for sending or recording anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from alarms.notify.config import DEFAULT_TIMEZONE, TIERS, NotifyConfig, Receiver, Roster, SitePolicy
from core.domain import Grade

PROJECT_MANAGER_TIER = 3
TIER_LABELS = {1: ("消控室值班", "control room on duty"), 2: ("主管", "supervisor"), 3: ("项目经理", "project manager")}
DEFAULT_RENOTIFY = {True: timedelta(minutes=10), False: timedelta(hours=1)}  # by Grade.is_emergency
DEFAULT_MAX_RENOTIFY = 12


@dataclass(frozen=True, slots=True)
class ResponseClock:
    """The clocks of one grade at one site: respond (acknowledge) within `response`, handle
    within `handling`; while unacknowledged, remind every `renotify_every`, at most `max_renotify` times."""

    response: timedelta
    handling: timedelta
    renotify_every: timedelta
    max_renotify: int
    timezone: ZoneInfo


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The receivers routes add for an alarm, and whether the on-duty roster is notified."""

    receivers: tuple[str, ...]
    roster: bool


class Router:
    """Answers routing questions from one `NotifyConfig`."""

    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        self._receivers = {r.name: r for r in config.receivers}

    def receiver(self, name: str) -> Receiver | None:
        return self._receivers.get(name)

    def timezone(self, site: str) -> ZoneInfo:
        policy = self.config.sites.get(site)
        name = (policy and policy.timezone) or self.config.defaults.timezone or DEFAULT_TIMEZONE
        return _zone(name)

    def response_clock(self, site: str, grade: Grade) -> ResponseClock:
        """The response clock of `grade` at `site`: site override → defaults → the grade's default."""
        policies = [p for p in (self.config.sites.get(site), self.config.defaults) if p is not None]
        max_renotify = next((p.max_renotify for p in policies if p.max_renotify is not None), DEFAULT_MAX_RENOTIFY)
        return ResponseClock(
            response=_first(policies, "response", grade, grade.default_response),
            handling=_first(policies, "handling", grade, grade.default_handling),
            renotify_every=_first(policies, "renotify_every", grade, DEFAULT_RENOTIFY[grade.is_emergency]),
            max_renotify=max_renotify, timezone=self.timezone(site),
        )

    def routes(self, site: str, category: str, grade: Grade) -> RouteDecision:
        """Routes in order: the first match decides `roster`; `continue` goes on to add receivers."""
        receivers: list[str] = []
        roster: bool | None = None
        for route in self.config.routes:
            if not route.match.matches(site, category, grade):
                continue
            roster = route.roster if roster is None else roster
            receivers.extend(r for r in route.receivers if r not in receivers)
            if not route.continue_:
                break
        return RouteDecision(tuple(receivers), True if roster is None else roster)

    def on_duty(self, site: str, tier: int, at: datetime) -> tuple[str, ...]:
        """Receivers of `tier` whose shift covers `at` (site local time); overlapping shifts all count."""
        if tier not in TIERS:
            raise ValueError(f"no tier {tier}: tiers are {TIERS}")
        roster = self._roster(site)
        if roster is None:
            return ()
        local = at.astimezone(self.timezone(site))
        names: list[str] = []
        for shift in roster.shifts(tier):
            if shift.contains(local):
                names.extend(n for n in shift.receivers if n not in names)
        return tuple(names)

    def muted(self, receiver: str, grade: Grade, at: datetime) -> bool:
        """Whether quiet hours of `receiver` hold back a notification at `at`. Never for
        emergencies (grades 1–2)."""
        config = self._receivers.get(receiver)
        if config is None or grade.is_emergency or not config.quiet_hours:
            return False
        local = at.astimezone(_zone(config.timezone))
        return any(window.contains(local) for window in config.quiet_hours)

    def _roster(self, site: str) -> Roster | None:
        policy: SitePolicy | None = self.config.sites.get(site)
        if policy is not None and policy.roster is not None:
            return policy.roster
        return self.config.defaults.roster


def _first(policies: list[SitePolicy], field: str, grade: Grade, default: timedelta) -> timedelta:
    for policy in policies:
        durations: dict[Grade, timedelta] = getattr(policy, field)
        if grade in durations:
            return durations[grade]
    return default


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
