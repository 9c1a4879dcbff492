"""ingest.presence: online/offline from readings, status topics and silence; seq accounting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.domain import DeviceRef, Family, Reading
from ingest.decode import PresenceChange
from ingest.presence import Cause, PresenceTracker

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
GAS = DeviceRef("s1", Family.GAS, "g1")
ENV = DeviceRef("s1", Family.ENV, "e1")


def reading(device: DeviceRef, seq: int | None = None, historical: bool = False) -> Reading:
    metrics = {"lel_pct": 1.0} if device.family is Family.GAS else {"co2_ppm": 500.0}
    return Reading(device, T0, metrics, seq=seq, historical=historical)


def tracker() -> PresenceTracker:
    return PresenceTracker(lambda d: 60.0 if d.family is Family.GAS else 300.0)


def test_silence_past_grace_marks_offline_then_a_reading_brings_it_back() -> None:
    t = tracker()
    t.readings([reading(GAS), reading(ENV)], T0)
    assert t.sweep(T0 + timedelta(seconds=180)) == []  # exactly 3 intervals: not yet
    [event] = t.sweep(T0 + timedelta(seconds=181))
    assert (event.device, event.online, event.stale, event.cause) == (GAS, False, True, Cause.SILENCE)
    assert t.sweep(T0 + timedelta(seconds=240)) == []  # reported once, not again
    assert t.counts() == (1, 1)
    [back] = t.readings([reading(GAS)], T0 + timedelta(seconds=250))
    assert (back.device, back.online, back.cause) == (GAS, True, Cause.REPORTED)


def test_status_topics_and_wills() -> None:
    t = tracker()
    t.readings([reading(GAS)], T0)
    [offline] = t.status([PresenceChange("s1", False, device=GAS)], T0)
    assert (offline.online, offline.cause) == (False, Cause.STATUS)
    assert t.status([PresenceChange("s1", False, device=GAS)], T0) == []  # retained repeat
    [gateway] = t.status([PresenceChange("s1", False, gateway_id="gw-1")], T0)
    assert (gateway.gateway_id, gateway.online) == ("gw-1", False)


def test_seq_gaps_resets_and_redeliveries() -> None:
    t = tracker()
    t.readings([reading(GAS, 1), reading(GAS, 2), reading(GAS, 5)], T0)
    assert t.seq_gaps[GAS] == 2
    t.readings([reading(GAS, 5)], T0)  # a redelivery is not a gap
    t.readings([reading(GAS, 1)], T0)  # the device restarted its counter
    t.readings([reading(GAS, 2), reading(GAS, 9, historical=True)], T0)  # replays are not counted
    assert (t.seq_gaps[GAS], t.seq_resets[GAS]) == (2, 1)
