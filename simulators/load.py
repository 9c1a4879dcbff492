"""The load generator: many synthetic devices publishing at a requested rate, for bench/.

`--rate` is readings per second over all devices. Modes:
- `json`: one v1 telemetry message per reading;
- `batch`: v1 gateway batches of `batch_size` readings;
- `sparkplug`: Sparkplug B (NBIRTH/DBIRTH, then one DDATA per reading) encoded with
  `core.sparkplug`, the contract's own encoder.

Readings are valid `env` readings (they pass ingest's schema), each device with its own `seq`
and strictly increasing timestamps (a store such as InfluxDB overwrites a point with the same
series and time, so two readings of a device in one millisecond would count once).
The result reports the rate published over the publishing window and, apart, the share of the
messages the broker acknowledged (QoS 1 PUBACK; for QoS 0, written to the socket); the rate is
reached only if every message was acknowledged. At most
`MAX_OUTSTANDING` messages may await acknowledgement, so the generator cannot run ahead of the
broker by more than that: one that only fills its own send queue does not count as fast. The
time from the last publish to the last acknowledgement is reported apart (`ack_tail_s`: with
Nagle's algorithm on the broker's socket it is typically 40 ms). `reached` says whether it kept up.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core import sparkplug as spb
from core.broker import BrokerAddress
from core.domain import Family
from core.topics import ROOT, gateway_batch_topic
from simulators.mqtt_transport import BrokerRefused, is_refusal, refusal_text

Mode = Literal["json", "batch", "sparkplug"]
REACHED_SHARE = 0.95  # achieved / requested at or above this counts as reaching the rate
MAX_OUTSTANDING = 1000  # published but not yet acknowledged messages; more only hides a slow broker
_METRICS = ("co2_ppm", "temp_c", "rh_pct")


@dataclass(frozen=True, slots=True)
class LoadSpec:
    devices: int
    rate: float  # readings per second, all devices together
    duration_s: float
    mode: Mode = "json"
    batch_size: int = 100
    qos: int = 1
    site: str = "load"
    gateway_id: str = "gw-load-1"
    ack_timeout_s: float = 30.0


@dataclass
class LoadResult:
    spec: LoadSpec
    messages: int
    readings: int
    acked_messages: int
    elapsed_s: float
    messages_per_s: float  # published
    readings_per_s: float  # published
    reached: bool  # every message acknowledged, at 95 % of the requested rate or more
    acked_share: float = 1.0  # acknowledged / published messages
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        verdict = "reached" if self.reached else "NOT reached"
        return (f"{self.spec.mode}: requested {self.spec.rate:,.0f} readings/s for {self.spec.duration_s:g} s; "
                f"published {self.readings_per_s:,.0f} readings/s ({self.messages_per_s:,.0f} messages/s), "
                f"{self.acked_messages}/{self.messages} messages acknowledged ({self.acked_share:.1%}) - {verdict}"
                + (f" ({self.note})" if self.note else ""))

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class _Acks:
    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, *_args: object) -> None:  # on_publish(client, userdata, mid, reason, properties)
        with self.lock:
            self.count += 1
            self.last = time.perf_counter()


class _Payloads:
    """Message bodies for the mode; cheap enough to make on the fly (orjson, small dicts)."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.ids = [f"load-{i:06d}" for i in range(spec.devices)]
        self.seq = [0] * spec.devices
        self.last_ms = [0] * spec.devices  # each device's last timestamp: the next one is later
        self.rng = random.Random(1)
        self._spb_seq = 0
        self._defs = spb.metric_defs(Family.ENV, _METRICS)
        self._topics = [f"{ROOT}/{spec.site}/env/{d}/telemetry" for d in self.ids]

    def _metrics(self) -> dict[str, float]:
        value = self.rng.random()
        return {"co2_ppm": 450.0 + 400 * value, "temp_c": 21.0 + 3 * value, "rh_pct": 40.0 + 20 * value}

    def _next(self, index: int, now_ms: int) -> tuple[int, int]:
        """The device of reading `index`, and its timestamp: now, or 1 ms after its last one."""
        device = index % self.spec.devices
        self.seq[device] += 1
        ts = self.last_ms[device] = max(now_ms, self.last_ms[device] + 1)
        return device, ts

    def messages(self) -> Iterator[tuple[str, bytes, int]]:
        """Endless (topic, payload, readings in it)."""
        index = 0
        batch_topic = gateway_batch_topic(self.spec.site, self.spec.gateway_id)
        while True:
            now_ms = int(time.time() * 1000)
            if self.spec.mode == "batch":
                items = []
                for _ in range(self.spec.batch_size):
                    device, ts = self._next(index, now_ms)
                    index += 1
                    items.append({"device_id": self.ids[device], "family": "env", "ts": ts,
                                  "seq": self.seq[device], "metrics": self._metrics()})
                yield batch_topic, orjson.dumps({"readings": items}), len(items)
            elif self.spec.mode == "sparkplug":
                device, ts = self._next(index, now_ms)
                index += 1
                yield self._ddata(device, ts)
            else:
                device, ts = self._next(index, now_ms)
                index += 1
                body = {"ts": ts, "seq": self.seq[device], "metrics": self._metrics()}
                yield self._topics[device], orjson.dumps(body), 1

    # --- Sparkplug B (the fmon convention of docs/sparkplug.md) --------------------------------

    def next_spb_seq(self) -> int:
        seq = self._spb_seq
        self._spb_seq = spb.next_seq(seq)
        return seq

    def births(self, bd_seq: int) -> list[tuple[str, bytes]]:
        now = datetime.now(UTC)
        node = spb.node_birth(bd_seq, timestamp=now)
        self._spb_seq = 1  # NBIRTH carries seq 0
        out = [(spb.node_topic(self.spec.site, spb.MessageType.NBIRTH, self.spec.gateway_id), spb.encode_payload(node))]
        for device_id in self.ids:
            birth = spb.device_birth(self._defs, self._metrics(), family=Family.ENV, seq=self.next_spb_seq(),
                                     timestamp=now)
            topic = spb.device_topic(self.spec.site, spb.MessageType.DBIRTH, self.spec.gateway_id, device_id)
            out.append((topic, spb.encode_payload(birth)))
        return out

    def death(self, bd_seq: int) -> tuple[str, bytes]:
        topic = spb.node_topic(self.spec.site, spb.MessageType.NDEATH, self.spec.gateway_id)
        return topic, spb.encode_payload(spb.node_death(bd_seq))

    def _ddata(self, device: int, now_ms: int) -> tuple[str, bytes, int]:
        stamp = spb.from_millis(now_ms)
        data = spb.device_data(self._defs, self._metrics(), seq=self.next_spb_seq(), timestamp=stamp)
        topic = spb.device_topic(self.spec.site, spb.MessageType.DDATA, self.spec.gateway_id, self.ids[device])
        return topic, spb.encode_payload(data), 1


def run_load(address: BrokerAddress, spec: LoadSpec) -> LoadResult:
    """Publish at `spec.rate` readings/s for `spec.duration_s`, then wait for the acknowledgements."""
    payloads = _Payloads(spec)
    acks = _Acks()
    client = _client(address, spec, payloads, acks)
    try:
        births = _connect(client, address, spec, payloads)
        with acks.lock:
            acks.count = 0  # count only the load itself, not the births
        return _publish(client, spec, payloads, acks, births)
    finally:
        client.disconnect()
        client.loop_stop()


def _client(address: BrokerAddress, spec: LoadSpec, payloads: _Payloads, acks: _Acks) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"load-{spec.site}-{spec.gateway_id}")
    if address.username:
        client.username_pw_set(address.username, address.password)
    context = address.ssl_context()  # mqtts://, with ?cafile= for a private CA
    if context is not None:
        client.tls_set_context(context)
    client.max_inflight_messages_set(1000)  # much more makes paho's own bookkeeping the bottleneck
    client.max_queued_messages_set(0)
    if spec.mode == "sparkplug":
        client.will_set(*payloads.death(0), qos=1)
    client.on_publish = acks
    return client


def _connect(client: mqtt.Client, address: BrokerAddress, spec: LoadSpec, payloads: _Payloads) -> int:
    """Log in (raises `BrokerRefused` if the broker says no), then publish the Sparkplug births."""
    answered = threading.Event()
    refusals: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if is_refusal(reason):
            refusals.append(refusal_text(reason))
        answered.set()

    client.on_connect = on_connect
    client.connect(address.host, address.port, keepalive=60)
    client.loop_start()
    if not answered.wait(10):
        raise ConnectionError(f"could not connect to {address.url}")
    if refusals:  # otherwise it would end as "N messages not acknowledged"
        raise BrokerRefused(refusals[0])
    if spec.mode != "sparkplug":
        return 0
    infos = [client.publish(topic, body, qos=1) for topic, body in payloads.births(0)]
    for info in infos:
        info.wait_for_publish(30)
    return len(infos)


def _publish(client: mqtt.Client, spec: LoadSpec, payloads: _Payloads, acks: _Acks, births: int) -> LoadResult:
    """Keep to the schedule (readings due = elapsed × rate) until the duration is over; a generator
    that falls behind does not catch up afterwards, so the run takes about `duration_s`."""
    total = int(spec.rate * spec.duration_s)
    messages = readings = 0
    source = payloads.messages()
    start = time.perf_counter()
    end = start + spec.duration_s
    while readings < total and (now := time.perf_counter()) < end:
        due = min(total, int((now - start) * spec.rate) + 1)
        if readings >= due:
            time.sleep(min(0.002, (readings - due + 1) / spec.rate))
        elif messages - acks.count >= MAX_OUTSTANDING:
            time.sleep(0.0005)  # the broker is behind: wait rather than queue without bound
        else:
            for _ in range(100):  # a burst, then look at the clock again
                topic, body, count = next(source)
                client.publish(topic, body, qos=spec.qos)
                messages += 1
                readings += count
                if readings >= due:
                    break
    published = time.perf_counter()
    deadline = published + spec.ack_timeout_s
    while acks.count < messages and time.perf_counter() < deadline:
        time.sleep(0.005)
    with acks.lock:
        acked, last = acks.count, acks.last
    extra = {"births": births, "ack_tail_s": round(max(0.0, last - published), 3)}
    return summarise(spec, messages, readings, acked, published - start, extra)


def summarise(spec: LoadSpec, messages: int, readings: int, acked: int, elapsed_s: float,
              extra: dict[str, Any] | None = None) -> LoadResult:
    """The result of a run: published rates, acknowledged share, and whether the rate was reached."""
    reading_rate = readings / elapsed_s if elapsed_s > 0 else 0.0
    message_rate = messages / elapsed_s if elapsed_s > 0 else 0.0
    share = acked / messages if messages else 1.0
    reached = acked == messages and reading_rate >= REACHED_SHARE * spec.rate
    note = ""
    if acked < messages:
        note = f"{messages - acked} messages not acknowledged within {spec.ack_timeout_s:g} s"
    elif not reached:
        note = f"the generator or the broker could not keep up: {reading_rate / spec.rate:.0%} of the requested rate"
    return LoadResult(spec, messages, readings, acked, round(elapsed_s, 3), round(message_rate, 1),
                      round(reading_rate, 1), reached, round(share, 4), note, dict(extra or {}))
