"""The device directory: an in-memory snapshot of the registry for the ingest hot path.

`DeviceDirectory.check()` runs once per reading, so it is a tuple build and a set or dict
lookup; the database is read only by `refresh()`, which swaps in a whole new snapshot (readers
in other threads see the old or the new one, never a mix). Unknown devices of a site that
allows auto-registration are accepted and queued; the caller persists `drain_auto_registered()`
in batches (`RegistryStore.auto_register_many`), and calls `refresh_if_changed()` now and then.

An empty registry (no site at all) is *open*: every device is accepted and nothing is queued,
so the demo and a first installation work before anyone imports an inventory
(docs/inventory.md). Not for: editing the registry or checking gateway ownership.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.domain import DeviceRef, device_ref
from core.schema import DEFAULT_REPORT_INTERVAL_S
from storage.state.registry import DeviceRecord, SiteSpec

UNKNOWN_DEVICE = "unknown_device"
UNKNOWN_SITE = "unknown_site"

_Key = tuple[str, str, str]  # (site, family, device_id); Family is a StrEnum, so its members hash as text


class RegistrySource(Protocol):
    """Where the directory loads its snapshot from (`storage.state.registry.RegistryStore`)."""

    def sites(self) -> Sequence[SiteSpec]: ...

    def devices(self, site: str | None = None) -> Sequence[DeviceRecord]: ...

    def revision(self) -> Hashable:
        """A value that changes whenever the registry changes (cheap to read)."""
        ...


@dataclass(frozen=True, slots=True)
class _Snapshot:
    auto_sites: dict[str, bool]  # site → allows auto-registration
    known: set[_Key]  # grows by auto-accepted devices until the next refresh
    intervals: dict[_Key, float] = field(default_factory=dict)  # per-device overrides only
    zones: dict[_Key, str] = field(default_factory=dict)  # "building/zone" of located devices
    kinds: dict[_Key, str] = field(default_factory=dict)  # e.g. meter kind: water, electric
    behind: dict[tuple[str, str], tuple[DeviceRef, ...]] = field(default_factory=dict)  # (site, gateway) → devices

    @property
    def is_open(self) -> bool:
        return not self.auto_sites


class DeviceDirectory:
    """Answers "may this device's readings in?" and "how often should it report?" from memory."""

    def __init__(self, source: RegistrySource) -> None:
        """Load the first snapshot from `source` (one query each for sites and devices)."""
        self._source = source
        self._lock = threading.Lock()
        self._pending: dict[_Key, DeviceRef] = {}
        self._snapshot = _Snapshot({}, set())
        self._revision: Hashable = None
        self.refresh()

    def refresh_if_changed(self) -> bool:
        """Reload if the registry changed since the last load (two small queries otherwise).

        Long-running workers call this every few seconds, off the hot path.
        """
        if self._source.revision() == self._revision:
            return False
        self.refresh()
        return True

    def refresh(self) -> None:
        """Reload the whole registry (about 1 s per 100 000 devices on SQLite)."""
        revision = self._source.revision()  # read first: a change during the load triggers another
        sites = {site.site: site.auto_register for site in self._source.sites()}
        known: set[_Key] = set()
        intervals: dict[_Key, float] = {}
        zones: dict[_Key, str] = {}
        kinds: dict[_Key, str] = {}
        behind: dict[tuple[str, str], list[DeviceRef]] = {}
        for device in self._source.devices():
            key = (device.site, device.family.value, device.device_id)
            known.add(key)
            if device.report_interval_s is not None:
                intervals[key] = device.report_interval_s
            if device.zone_id is not None:
                zones[key] = f"{device.building_id or '-'}/{device.zone_id}"
            if device.kind:
                kinds[key] = device.kind
            if device.gateway_id is not None:
                behind.setdefault((device.site, device.gateway_id), []).append(device.ref)
        gateways = {gateway: tuple(devices) for gateway, devices in behind.items()}
        with self._lock:
            known.update(self._pending)  # queued but not yet persisted: still accepted
            self._snapshot = _Snapshot(sites, known, intervals, zones, kinds, gateways)
            self._revision = revision

    @property
    def is_open(self) -> bool:
        """True while the registry has no site: every device is accepted."""
        return self._snapshot.is_open

    def __len__(self) -> int:
        return len(self._snapshot.known)

    def check(self, device: DeviceRef) -> str | None:
        """None if readings of `device` are accepted, else the dead-letter reason.

        `unknown_site`: the site is not registered. `unknown_device`: the site is, the device
        is not, and the site does not allow auto-registration. A device of a site that does is
        accepted and queued for `drain_auto_registered()`.
        """
        snapshot = self._snapshot
        key = (device.site, device.family, device.device_id)
        if key in snapshot.known or snapshot.is_open:
            return None
        auto = snapshot.auto_sites.get(device.site)
        if auto is None:
            return UNKNOWN_SITE
        if not auto:
            return UNKNOWN_DEVICE
        with self._lock:
            snapshot.known.add(key)
            self._pending[key] = device
        return None

    def drain_auto_registered(self) -> list[DeviceRef]:
        """The devices accepted by auto-registration since the last drain, for persisting."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return list(pending.values())

    def report_interval(self, device: DeviceRef) -> float:
        """Seconds between readings expected of `device`: its inventory override or its family's default."""
        interval = self._snapshot.intervals.get((device.site, device.family, device.device_id))
        return interval if interval is not None else DEFAULT_REPORT_INTERVAL_S[device.family]

    def zone_of(self, device: DeviceRef) -> str | None:
        """`building/zone` of the device from the inventory, or None when not located."""
        return self._snapshot.zones.get((device.site, device.family, device.device_id))

    def location(self, site: str, family: str, device_id: str) -> tuple[str | None, str | None]:
        """(building, zone) of a registered device, for alarm filters."""
        where = self._snapshot.zones.get((site, family, device_id))
        if where is None:
            return None, None
        building, zone = where.split("/", 1)
        return (None if building == "-" else building), zone

    def devices(self, site: str = "+") -> list[DeviceRef]:
        """Every registered (or auto-accepted) device, of one site or of all (`+`)."""
        with self._lock:  # `check` adds auto-accepted devices from the ingest thread
            keys = list(self._snapshot.known)
        return [device_ref(*key) for key in keys if site in ("+", key[0])]

    def devices_behind(self, site: str, gateway_id: str) -> tuple[DeviceRef, ...]:
        """The devices the inventory puts behind a gateway (or fire panel), for presence."""
        return self._snapshot.behind.get((site, gateway_id), ())

    def kind_of(self, device: DeviceRef) -> str | None:
        """The device's kind from the inventory (e.g. meter kind), or None."""
        return self._snapshot.kinds.get((device.site, device.family, device.device_id))
