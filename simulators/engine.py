"""The simulation engine: runs a site over simulated time. Pure: no I/O, no clock, no threads.

`step(now)` applies the scenario steps that are due, samples every device whose report is due
(or that has something to report at once: an event, a command's effect, a change of its own),
and returns the readings with the gateway each goes through, plus gateway connection changes.
`next_wakeup()` says when the next step is worth taking, so offline runs (tests, backfill) jump
from event to event and real-time runs sleep until then.

Commands from fmon go through `command()`, which answers with the acknowledgement to publish.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.domain import Reading
from simulators.models.base import CommandRejected
from simulators.scenario import BoundStep, GatewayOfflineParams
from simulators.site import SimDevice, Site

_RESERVED = ("id", "command", "args", "ts")
_REMEMBERED_ACKS = 1000


@dataclass(frozen=True, slots=True)
class GatewayChange:
    """A gateway's connection goes down (`online=False`: cut without DISCONNECT) or comes back."""

    gateway_id: str
    online: bool


@dataclass(frozen=True, slots=True)
class Ack:
    command_id: str | None
    status: str  # "done" | "rejected"
    reason: str | None = None


@dataclass
class Tick:
    readings: list[tuple[str, Reading]] = field(default_factory=list)  # (gateway id, reading)
    gateway_changes: list[GatewayChange] = field(default_factory=list)


class SimEngine:
    """Runs `site` from `start`, playing `steps` (times relative to `start`)."""

    def __init__(self, site: Site, start: datetime, steps: Sequence[BoundStep] = ()) -> None:
        self.site = site
        self.start = start = start.astimezone(UTC)  # readings are stamped in UTC
        self._due = dict.fromkeys(site.devices, start)
        self._steps = sorted(steps, key=lambda s: s.at)
        self._next_step = 0
        self._restores: list[tuple[datetime, str]] = []
        self._acks: OrderedDict[tuple[str, str], Ack] = OrderedDict()
        self._now = start

    # --- time ----------------------------------------------------------------------------------

    def next_wakeup(self) -> datetime:
        """The earliest time at which `step` has something to do."""
        times = list(self._due.values())
        if self._next_step < len(self._steps):
            times.append(self.start + self._steps[self._next_step].at)
        times += [when for when, _ in self._restores]
        for device in self.site.devices.values():
            model = device.model
            if model.silent_until is not None and model.silent(self._now):
                times.append(model.silent_until)  # a silent device changes nothing we can see before
                continue
            change = model.next_change()
            if change is not None:
                times.append(change)
        return min(times)

    def step(self, now: datetime) -> Tick:
        now = self._now = now.astimezone(UTC)
        tick = Tick()
        self._play_steps(now, tick)
        self._restore_gateways(now, tick)
        for device_id, device in self.site.devices.items():
            reading = self._report(device_id, device, now)
            if reading is not None:
                tick.readings.append((device.gateway_id, reading))
        return tick

    def _play_steps(self, now: datetime, tick: Tick) -> None:
        while self._next_step < len(self._steps) and self.start + self._steps[self._next_step].at <= now:
            step = self._steps[self._next_step]
            self._next_step += 1
            if step.gateway_id is not None:
                assert isinstance(step.params, GatewayOfflineParams)
                tick.gateway_changes.append(GatewayChange(step.gateway_id, online=False))
                self._restores.append((now + step.params.duration, step.gateway_id))
            elif step.device_id is not None:
                self.site.device(step.device_id).model.act(step.action, step.params, now)

    def _restore_gateways(self, now: datetime, tick: Tick) -> None:
        back = [gw for when, gw in self._restores if when <= now]
        self._restores = [(when, gw) for when, gw in self._restores if when > now]
        tick.gateway_changes += [GatewayChange(gw, online=True) for gw in back]

    def _report(self, device_id: str, device: SimDevice, now: datetime) -> Reading | None:
        model = device.model
        due = self._due[device_id] <= now
        if due:
            self._due[device_id] = self._next_due(self._due[device_id], model.interval_s, now)
        change = model.next_change()
        if not (due or model.dirty or (change is not None and change <= now)) or model.silent(now):
            return None
        sample = model.sample(now)
        return Reading(device.ref, now, sample.metrics, device.next_seq(), sample.events)

    @staticmethod
    def _next_due(due: datetime, interval_s: float, now: datetime) -> datetime:
        step = timedelta(seconds=interval_s)
        due += step
        if due <= now:  # fell behind (a slow machine, a long pause): skip, do not burst
            due = now + step
        return due

    # --- commands -------------------------------------------------------------------------------

    def command(self, device_id: str, body: object, now: datetime) -> Ack:
        """Carry out a command addressed to `device_id`; a repeated id gets the first answer again."""
        if not isinstance(body, Mapping) or not isinstance(body.get("command"), str):
            command_id = body.get("id") if isinstance(body, Mapping) else None
            return Ack(command_id if isinstance(command_id, str) else None, "rejected",
                       "a command is a JSON object with a string 'command' (and an 'id')")
        command_id = body.get("id")
        if not isinstance(command_id, str) or not command_id:
            return Ack(None, "rejected", "the command has no string 'id' to acknowledge")
        key = (device_id, command_id)
        if key in self._acks:
            return self._acks[key]  # QoS 1 redelivery: answer again, do not act twice
        ack = self._carry_out(device_id, command_id, body["command"], _arguments(body), now)
        self._acks[key] = ack
        if len(self._acks) > _REMEMBERED_ACKS:
            self._acks.popitem(last=False)
        return ack

    def _carry_out(self, device_id: str, command_id: str, name: str, args: dict[str, Any], now: datetime) -> Ack:
        device = self.site.devices.get(device_id)
        if device is None:
            return Ack(command_id, "rejected", f"no device {device_id!r} behind this gateway")
        if device.model.silent(now):
            return Ack(command_id, "rejected", f"{device_id} does not answer")
        try:
            device.model.command(name, args, now)
        except CommandRejected as exc:
            return Ack(command_id, "rejected", exc.reason)
        return Ack(command_id, "done")


def _arguments(body: Mapping[str, Any]) -> dict[str, Any]:
    """Command arguments: the `args` object (as the AsyncAPI contract has it) and any other fields."""
    args = dict(body["args"]) if isinstance(body.get("args"), Mapping) else {}
    args.update({k: v for k, v in body.items() if k not in _RESERVED})
    return args
