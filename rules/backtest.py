"""Backtest: replay stored telemetry through a fresh rule engine and say what would have fired.

The history comes from a telemetry store's `scan` in time order; the engine ticks after the
readings of each timestamp and every `tick_every` of data time in between, as the ingest
worker's timer does, so on-delays, off-delays and escalations fire at their exact times.
Nothing is written anywhere: no alarm, no rule state.

What stored telemetry cannot replay: events (the stores keep metrics only), presence (offline
rules) and the state a live worker had before `start` (use `warmup` for rate, anomaly and
on-delay rules). Historical (store-and-forward) readings are replayed like live ones: in a
backtest every reading is history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from core.domain import Reading
from rules.engine import KindOf, RuleEngine, ZoneOf
from rules.model import ChangeKind, ConditionChange, Count, EventMatch, Offline, Rule


class History(Protocol):
    """Where stored readings come from (`storage.telemetry.TelemetryStore.scan`)."""

    def scan(self, start: datetime, end: datetime, *, site: str | None = None) -> Iterator[Reading]: ...


@dataclass(frozen=True)
class BacktestReport:
    """The changes in [start, end), oldest first, and what the replay covered."""

    start: datetime
    end: datetime
    changes: tuple[ConditionChange, ...]
    readings: int
    devices: int
    not_replayable: tuple[Rule, ...]  # event, count and offline rules: no events or presence stored
    active_at_start: tuple[tuple[str, str], ...] = ()  # (rule, source) raised during the warm-up

    def counts(self) -> dict[str, Counter[ChangeKind]]:
        """Per rule id, how many raises, clears and regrades; most raises first."""
        counts: dict[str, Counter[ChangeKind]] = {}
        for change in self.changes:
            counts.setdefault(change.rule.id, Counter())[change.kind] += 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1][ChangeKind.RAISE], item[0])))


def backtest(history: History, rules: Iterable[Rule], start: datetime, end: datetime, *,
             site: str | None = None, tick_every: timedelta = timedelta(seconds=1),
             warmup: timedelta = timedelta(0), zone_of: ZoneOf = lambda _d: None,
             kind_of: KindOf = lambda _d: None) -> BacktestReport:
    """Replay `history` in [start - warmup, end) through `rules`; report changes from `start` on.
    `zone_of` and `kind_of` locate and classify devices as the worker's registry does."""
    rules = list(rules)
    readings = history.scan(start - warmup, end, site=site)
    return replay(rules, readings, start, end, tick_every=tick_every, warmup=warmup, zone_of=zone_of,
                  kind_of=kind_of)


def replay(rules: list[Rule], readings: Iterable[Reading], start: datetime, end: datetime, *,
           tick_every: timedelta = timedelta(seconds=1), warmup: timedelta = timedelta(0),
           zone_of: ZoneOf = lambda _d: None, kind_of: KindOf = lambda _d: None) -> BacktestReport:
    """Readings (oldest first) through a fresh engine; pure: lists in, a report out."""
    if tick_every <= timedelta(0):
        raise ValueError("tick_every must be above 0")
    run = _Replay(RuleEngine(rules, zone_of, kind_of), start - warmup, tick_every)
    for reading in readings:
        run.feed(reading)
    run.finish(end)
    early = [c for c in run.changes if c.at < start]
    return BacktestReport(
        start, end, tuple(sorted((c for c in run.changes if c.at >= start), key=lambda c: c.at)),
        run.readings, len(run.devices),
        tuple(r for r in rules if isinstance(r.condition, EventMatch | Count | Offline)),
        _still_active(early),
    )


class _Replay:
    """Feeds readings grouped by timestamp, ticking in between on data time."""

    def __init__(self, engine: RuleEngine, first_tick: datetime, tick_every: timedelta) -> None:
        self.engine, self.tick_every, self.next_tick = engine, tick_every, first_tick
        self.changes: list[ConditionChange] = []
        self.batch: list[Reading] = []
        self.readings = 0
        self.devices: set[str] = set()

    def feed(self, reading: Reading) -> None:
        if self.batch and reading.ts != self.batch[0].ts:
            self._flush()
        self._tick_until(reading.ts)
        self.batch.append(replace(reading, historical=False) if reading.historical else reading)
        self.readings += 1
        self.devices.add(reading.device.key)

    def finish(self, end: datetime) -> None:
        self._flush()
        self._tick_until(end)
        self.changes.extend(self.engine.tick(end))

    def _flush(self) -> None:
        if self.batch:
            at = self.batch[0].ts
            self.changes.extend(self.engine.process(self.batch))
            self.changes.extend(self.engine.tick(at))
            self.batch = []

    def _tick_until(self, at: datetime) -> None:
        """Periodic ticks strictly before `at` (the tick at `at` comes after its readings)."""
        while self.next_tick < at:
            self.changes.extend(self.engine.tick(self.next_tick))
            self.next_tick += self.tick_every
        if self.next_tick == at:
            self.next_tick += self.tick_every


def _still_active(changes: list[ConditionChange]) -> tuple[tuple[str, str], ...]:
    active: set[tuple[str, str]] = set()
    for change in sorted(changes, key=lambda c: c.at):
        key = (change.rule.id, change.source.key)
        if change.kind is ChangeKind.RAISE:
            active.add(key)
        elif change.kind is ChangeKind.CLEAR:
            active.discard(key)
    return tuple(sorted(active))
