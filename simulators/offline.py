"""Run a site (and a scenario) through simulated time at full speed, without a broker.

The engine jumps from one due report or step to the next, gateways publish into memory
(`MemoryTransport`), and the result is every message the broker would have delivered, with the
simulated time it was published at. Tests and `fmon simulate check` use it to check a
scenario's signature; it is also the reference for "the same seed gives the same messages".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.domain import Reading
from simulators.engine import SimEngine, Tick
from simulators.gateway import GatewayLink, MemoryTransport, Mode, Published
from simulators.scenario import BoundScenario, BoundStep
from simulators.site import Site

MIN_STEP = timedelta(milliseconds=100)


def apply_tick(tick: Tick, links: Mapping[str, GatewayLink]) -> None:
    """Connection changes first (readings at the moment of a cut are buffered), then readings."""
    for change in tick.gateway_changes:
        transport = links[change.gateway_id].transport
        if change.online:
            transport.restore()
        else:
            transport.cut()
    by_gateway: dict[str, list[Reading]] = {}
    for gateway_id, reading in tick.readings:
        by_gateway.setdefault(gateway_id, []).append(reading)
    for gateway_id, link in links.items():
        if gateway_id in by_gateway:
            link.send(by_gateway[gateway_id])
        else:
            link.poll()


@dataclass
class OfflineRun:
    start: datetime
    end: datetime
    published: list[Published]
    links: dict[str, GatewayLink]


class _SimNow:
    def __init__(self, start: datetime) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value


def run_offline(site: Site, start: datetime, duration: timedelta, steps: Sequence[BoundStep] = (),
                *, mode: Mode = "telemetry") -> OfflineRun:
    """Everything `site` publishes from `start` for `duration` of simulated time."""
    now = _SimNow(start)
    log: list[Published] = []
    links = {gw: GatewayLink(site.site_id, gw, MemoryTransport(site.site_id, gw, now, log), mode=mode)
             for gw in site.gateways}
    engine = SimEngine(site, start, steps)
    end = start + duration
    while now.value <= end:
        apply_tick(engine.step(now.value), links)
        now.value = max(engine.next_wakeup(), now.value + MIN_STEP)
    return OfflineRun(start, end, log, links)


def play(bound: BoundScenario, site: Site, *, start: datetime | None = None, focus: bool = True,
         mode: Mode = "telemetry") -> OfflineRun:
    """Run a bound scenario offline from its `start`; `focus` simulates only the devices it touches
    or checks and those behind the gateways it touches (each device's values are the same either way)."""
    if focus:
        behind = {d.ref.device_id for gw in bound.gateways for d in site.on_gateway(gw)}
        site = site.only(bound.devices | behind)
    return run_offline(site, start or bound.scenario.start, bound.scenario.duration, bound.steps, mode=mode)
