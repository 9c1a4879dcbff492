"""Presence and data accounting: who is online, whose values are stale, where `seq` jumped.

Inputs: live readings (a device that reports is online), retained status topics and MQTT
Wills (`online`/`offline` of gateways and directly connected devices), and the clock. A device
silent for longer than `grace` × its expected reporting interval goes offline and its values
become STALE; that transition is the input of the comms-failure rules. A gateway that goes
offline takes the devices the registry puts behind it offline at once (their values are stale
from that moment, not only after their silence). Per-device `seq` gaps are counted (a lower
`seq` after a device restart is counted as a reset, a repeat as a redelivery, neither as a gap).

The tracker lives in memory while rule state survives a restart, so a new worker is `seed`ed:
registry devices are expected from the start (one that never reports goes offline after its
interval), and devices the restored rule state holds offline start offline (their first
reading announces them online, which clears the restored offline alarm).

Bookkeeping only: no I/O, time passed in. Thread-safe (readings arrive on the ingest thread,
sweeps come from the timer thread).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.domain import DeviceRef, Reading
from ingest.decode import PresenceChange

GRACE = 3.0  # missed reporting intervals before a device counts as offline


class Cause(StrEnum):
    REPORTED = "reported"  # a reading arrived
    STATUS = "status"  # the device's or gateway's status topic / Will
    SILENCE = "silence"  # nothing within grace × interval
    GATEWAY = "gateway"  # the gateway the device reports through went offline


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A device or gateway went online or offline; `stale` marks its last values as stale."""

    site: str
    online: bool
    cause: Cause
    at: datetime
    device: DeviceRef | None = None
    gateway_id: str | None = None

    @property
    def stale(self) -> bool:
        return not self.online


@dataclass
class _Device:
    last_seen: datetime
    online: bool = True
    last_seq: int | None = None


GatewayDevices = Callable[[str, str], Iterable[DeviceRef]]  # (site, gateway id) → devices behind it


def no_devices(_site: str, _gateway_id: str) -> Iterable[DeviceRef]:
    return ()


class PresenceTracker:
    def __init__(self, interval_for: Callable[[DeviceRef], float], grace: float = GRACE,
                 behind: GatewayDevices = no_devices) -> None:
        """`interval_for` gives a device's expected reporting interval in seconds; `behind` the
        devices the registry puts behind a gateway (`DeviceDirectory.devices_behind`)."""
        self._interval_for, self._grace, self._behind = interval_for, grace, behind
        self._devices: dict[DeviceRef, _Device] = {}
        self._gateways: dict[tuple[str, str], bool] = {}
        self.seq_gaps: Counter[DeviceRef] = Counter()
        self.seq_resets: Counter[DeviceRef] = Counter()
        self._lock = threading.Lock()

    def seed(self, expected: Iterable[DeviceRef], now: datetime, offline: Iterable[DeviceRef] = ()) -> None:
        """Start-up state of a new worker. `expected` devices (the registry's) count as online
        and last seen `now`, so silence from here on sends them offline; `offline` devices (held
        offline by the restored rule state) start offline, so their first reading emits the
        `online` event the rules need to clear that alarm. Devices already tracked keep their state."""
        with self._lock:
            for device in offline:
                self._devices.setdefault(device, _Device(now, online=False))
            for device in expected:
                self._devices.setdefault(device, _Device(now))

    def readings(self, readings: Iterable[Reading], now: datetime) -> list[PresenceEvent]:
        """Account for arriving readings; returns devices that came back online."""
        with self._lock:
            return self._readings(readings, now)

    def _readings(self, readings: Iterable[Reading], now: datetime) -> list[PresenceEvent]:
        events = []
        for reading in readings:
            state = self._devices.get(reading.device)
            if state is None:
                state = self._devices[reading.device] = _Device(now)
            elif not state.online:
                state.online = True
                events.append(PresenceEvent(reading.device.site, True, Cause.REPORTED, now, reading.device))
            state.last_seen = max(state.last_seen, now)
            self._count_seq(reading, state)
        return events

    def status(self, changes: Iterable[PresenceChange], now: datetime) -> list[PresenceEvent]:
        """Apply status topics / Wills; returns the transitions."""
        with self._lock:
            return self._status(changes, now)

    def _status(self, changes: Iterable[PresenceChange], now: datetime) -> list[PresenceEvent]:
        events = []
        for change in changes:
            if change.device is not None and self._set_device(change.device, change.online, now):
                events.append(PresenceEvent(change.site, change.online, Cause.STATUS, now, change.device))
            elif change.gateway_id is not None and self._set_gateway(change.site, change.gateway_id, change.online):
                events.append(PresenceEvent(change.site, change.online, Cause.STATUS, now,
                                            gateway_id=change.gateway_id))
                if not change.online:
                    events.extend(self._gateway_down(change.site, change.gateway_id, now))
        return events

    def _gateway_down(self, site: str, gateway_id: str, now: datetime) -> list[PresenceEvent]:
        """The devices behind a gateway that went offline are unreachable now: offline and stale
        at once. They come back one by one, as their readings arrive (a gateway back online says
        nothing about each device behind it)."""
        events = []
        for device in self._behind(site, gateway_id):
            state = self._devices.setdefault(device, _Device(now))
            if state.online:
                state.online = False
                events.append(PresenceEvent(site, False, Cause.GATEWAY, now, device))
        return events

    def sweep(self, now: datetime) -> list[PresenceEvent]:
        """Devices silent past grace × interval go offline (their values are stale)."""
        with self._lock:
            return self._sweep(now)

    def _sweep(self, now: datetime) -> list[PresenceEvent]:
        events = []
        for device, state in self._devices.items():
            limit = timedelta(seconds=self._grace * self._interval_for(device))
            if state.online and now - state.last_seen > limit:
                state.online = False
                events.append(PresenceEvent(device.site, False, Cause.SILENCE, now, device))
        return events

    def is_online(self, device: DeviceRef) -> bool | None:
        state = self._devices.get(device)
        return None if state is None else state.online

    def counts(self) -> tuple[int, int]:
        """(online, offline) devices known to this worker."""
        with self._lock:
            online = sum(1 for state in self._devices.values() if state.online)
            return online, len(self._devices) - online

    def _set_device(self, device: DeviceRef, online: bool, now: datetime) -> bool:
        state = self._devices.setdefault(device, _Device(now, online=not online))
        changed = state.online != online
        state.online = online
        if online:
            state.last_seen = now
        return changed

    def _set_gateway(self, site: str, gateway_id: str, online: bool) -> bool:
        changed = self._gateways.get((site, gateway_id)) != online
        self._gateways[(site, gateway_id)] = online
        return changed

    def _count_seq(self, reading: Reading, state: _Device) -> None:
        if reading.seq is None or reading.historical:
            return
        last = state.last_seq
        if last is not None:
            if reading.seq > last + 1:
                self.seq_gaps[reading.device] += reading.seq - last - 1
            elif reading.seq < last:
                self.seq_resets[reading.device] += 1
        state.last_seq = reading.seq
