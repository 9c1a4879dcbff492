"""A simulated site: devices behind one gateway connection, publishing v1 telemetry.

The gateway connects with a retained `offline` Will on its status topic, announces `online`
(retained), and publishes one reading per device per interval with a per-device `seq`.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.broker import BrokerAddress
from core.clock import Clock
from core.domain import DeviceRef, Family
from core.topics import gateway_status_topic, telemetry_topic
from simulators.env_sensor import EnvSensor, crowded

log = logging.getLogger(__name__)


@dataclass
class SimulatedSite:
    site: str
    gateway_id: str
    sensors: list[EnvSensor]
    seqs: dict[DeviceRef, int] = field(default_factory=dict)

    def messages(self, ts: datetime) -> list[tuple[str, bytes]]:
        """The telemetry messages of every device at time `ts`."""
        out = []
        for sensor in self.sensors:
            seq = self.seqs.get(sensor.device, 0) + 1
            self.seqs[sensor.device] = seq
            body = {"ts": _iso(ts), "seq": seq, "metrics": sensor.sample(ts)}
            out.append((telemetry_topic(sensor.device), orjson.dumps(body)))
        return out


def demo_site(site: str = "demo", seed: int = 1) -> SimulatedSite:
    """A small site: office rooms in two buildings, and one crowded meeting room whose CO2
    exceeds 1000 ppm from the start (so the demo shows a real alarm within about a minute)."""
    rng = random.Random(seed)
    rooms = ["b1-f1-lobby", "b1-f2-office", "b1-f3-office", "b2-f1-lobby", "b2-f2-office"]
    sensors = [EnvSensor(DeviceRef(site, Family.ENV, f"env-{room}"), random.Random(rng.random())) for room in rooms]
    meeting = DeviceRef(site, Family.ENV, "env-b1-f2-meeting")
    sensors.append(EnvSensor(meeting, random.Random(rng.random()), occupancy=crowded(18)))
    return SimulatedSite(site, "gw-sim-1", sensors)


class SitePublisher:
    """Runs a `SimulatedSite` against a broker in a background thread."""

    def __init__(self, sim: SimulatedSite, address: BrokerAddress, clock: Clock,
                 interval: float = 5.0) -> None:
        self._sim, self._address, self._clock, self._interval = sim, address, clock, interval
        self._stop = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{sim.site}-{sim.gateway_id}")
        if address.username:
            self._client.username_pw_set(address.username, address.password)
        if address.tls:
            self._client.tls_set()
        status = gateway_status_topic(sim.site, sim.gateway_id)
        self._status_topic = status
        self._client.will_set(status, b"offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._thread = threading.Thread(target=self._run, name=f"sim-{sim.site}", daemon=True)
        self.published = 0

    def start(self) -> None:
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.publish(self._status_topic, b"offline", qos=1, retain=True).wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if not getattr(reason, "is_failure", False):
            client.publish(self._status_topic, b"online", qos=1, retain=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._client.is_connected():
                for topic, payload in self._sim.messages(self._clock.now()):
                    self._client.publish(topic, payload, qos=1)
                    self.published += 1
            self._stop.wait(self._interval)


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
