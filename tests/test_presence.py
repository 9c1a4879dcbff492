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


def test_seeded_devices_go_offline_after_their_interval_and_held_offline_ones_announce_their_return() -> None:
    t = tracker()
    t.seed([GAS, ENV], T0, offline=[GAS])  # GAS: the restored rule state holds it offline
    assert (t.is_online(GAS), t.is_online(ENV)) == (False, True)
    [back] = t.readings([reading(GAS)], T0 + timedelta(seconds=10))
    assert (back.device, back.online, back.cause) == (GAS, True, Cause.REPORTED)
    assert [e.device for e in t.sweep(T0 + timedelta(seconds=191))] == [GAS]  # GAS silent again
    [silent] = t.sweep(T0 + timedelta(seconds=901))  # ENV never reported: 3 × 300 s after the start
    assert (silent.device, silent.online, silent.cause) == (ENV, False, Cause.SILENCE)
    t.seed([ENV], T0 + timedelta(seconds=902))  # a later seed (registry refresh) keeps known states
    assert t.is_online(ENV) is False


def test_a_gateway_going_offline_takes_the_devices_behind_it_offline_at_once() -> None:
    behind = {("s1", "gw-1"): (GAS, ENV)}
    t = PresenceTracker(lambda _d: 60.0, behind=lambda site, gw: behind.get((site, gw), ()))
    t.readings([reading(GAS)], T0)  # ENV was never seen: it goes offline too
    events = t.status([PresenceChange("s1", False, gateway_id="gw-1")], T0 + timedelta(seconds=5))
    assert [(e.device, e.gateway_id, e.online, e.stale, e.cause) for e in events] == [
        (None, "gw-1", False, True, Cause.STATUS),
        (GAS, None, False, True, Cause.GATEWAY),
        (ENV, None, False, True, Cause.GATEWAY),
    ]
    assert t.counts() == (0, 2)
    assert t.sweep(T0 + timedelta(seconds=600)) == []  # already offline: no second event
    [gateway] = t.status([PresenceChange("s1", True, gateway_id="gw-1")], T0 + timedelta(seconds=700))
    assert gateway.gateway_id == "gw-1"  # the gateway is back; each device comes back by reporting
    assert t.is_online(GAS) is False
    [back] = t.readings([reading(GAS)], T0 + timedelta(seconds=710))
    assert (back.device, back.online) == (GAS, True)
