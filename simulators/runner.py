"""Runs a site against a broker in real or accelerated time, one connection per gateway.

One background thread owns the engine and the device models: it takes queued commands,
steps the engine, hands readings to the gateway links (which buffer while a link is down and
replay with `historical: true`), and sleeps until the next thing is due or a command arrives.
Time comes from a `SimClock` over the injected `Clock`.

Not for: deciding what the devices do (models, engine) or how messages look (payloads).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import orjson

from core.broker import BrokerAddress
from core.clock import Clock
from core.errors import TopicError
from core.topics import TopicKind, parse_topic
from simulators.engine import Ack, SimEngine
from simulators.gateway import GatewayLink, LinkStats, Mode, Transport
from simulators.mqtt_transport import BrokerRefused, CommandHandler, MqttTransport
from simulators.offline import apply_tick
from simulators.payloads import ack_payload
from simulators.scenario import BoundStep
from simulators.site import Site
from simulators.timebase import SimClock

log = logging.getLogger(__name__)
MAX_SLEEP_S = 0.5  # wake at least this often (stop requests, broker reconnections)


class Connection(Transport, Protocol):
    def start(self) -> None: ...

    def wait_connected(self, timeout: float) -> bool: ...

    @property
    def refusal(self) -> str | None:
        """Why the broker refused the login, if it did."""


Connect = Callable[[str, CommandHandler], Connection]


def mqtt_connect(address: BrokerAddress, site: str) -> Connect:
    """Connections to a real broker: one `MqttTransport` per gateway."""
    return lambda gateway_id, on_command: MqttTransport(address, site, gateway_id, on_command=on_command)


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    speed: float = 1.0
    start: datetime | None = None  # simulated start; None = now
    duration: timedelta | None = None  # simulated; None = until stopped
    mode: Mode = "telemetry"


class SiteRunner:
    def __init__(self, site: Site, connect: Connect, clock: Clock, *, steps: Sequence[BoundStep] = (),
                 options: RunnerOptions = RunnerOptions()) -> None:
        self.site, self._connect, self._options = site, connect, options
        self.clock = SimClock(clock, speed=options.speed, start=options.start)
        self.start_time = self.clock.now()
        self.engine = SimEngine(site, self.start_time, steps)
        self._end = None if options.duration is None else self.start_time + options.duration
        self._commands: queue.SimpleQueue[tuple[str, str, bytes]] = queue.SimpleQueue()
        self._wake, self._stop, self.finished = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-{site.site_id}", daemon=True)
        self.links: dict[str, GatewayLink] = {}
        self.error: BaseException | None = None  # why the loop stopped early, if it did

    def start(self, connect_timeout: float = 10.0) -> bool:
        """Connect every gateway, then start publishing. False if some gateway did not connect in time
        (it still publishes once connected; until then its readings are buffered). Raises
        `BrokerRefused` if the broker refused a login: buffering would not help."""
        connections = {gw: self._connect(gw, self._handler(gw)) for gw in self.site.gateways}
        for connection in connections.values():
            connection.start()
        connected = all(c.wait_connected(connect_timeout) for c in connections.values())
        refused = sorted({c.refusal for c in connections.values() if c.refusal})
        if refused:
            for connection in connections.values():
                connection.close()
            raise BrokerRefused("; ".join(refused))
        mode = self._options.mode
        self.links = {gw: GatewayLink(self.site.site_id, gw, c, mode=mode) for gw, c in connections.items()}
        self._thread.start()
        return connected

    def stop(self) -> None:
        """Stop publishing, then announce every gateway `offline` and disconnect cleanly."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for link in self.links.values():
            link.transport.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run's duration is over; True if it is."""
        return self.finished.wait(timeout)

    def stats(self) -> dict[str, LinkStats]:
        return {gw: link.stats for gw, link in self.links.items()}

    def _handler(self, gateway_id: str) -> CommandHandler:
        def on_command(topic: str, payload: bytes) -> None:  # paho's network thread: only queue
            self._commands.put((gateway_id, topic, payload))
            self._wake.set()
        return on_command

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = self.clock.now()
                if self._end is not None and now >= self._end:
                    break
                self._take_commands(now)
                apply_tick(self.engine.step(now), self.links)
                wait = self.clock.real_seconds_until(self.engine.next_wakeup())
                self._wake.wait(min(MAX_SLEEP_S, wait))
                self._wake.clear()
        except Exception as exc:
            log.exception("simulation of site %s failed", self.site.site_id)
            self.error = exc
        finally:
            self.finished.set()

    def _take_commands(self, now: datetime) -> None:
        while not self._commands.empty():
            gateway_id, topic, payload = self._commands.get_nowait()
            self._command(gateway_id, topic, payload, now)

    def _command(self, gateway_id: str, topic: str, payload: bytes, now: datetime) -> None:
        try:
            parsed = parse_topic(topic)
        except TopicError:
            return
        device = self.site.devices.get(parsed.device.device_id) if parsed.device else None
        if parsed.kind is not TopicKind.COMMAND or device is None or device.gateway_id != gateway_id \
                or device.ref != parsed.device:
            return  # another gateway's device (every gateway hears its site's commands)
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            ack = Ack(None, "rejected", "the command is not valid JSON")
        else:
            ack = self.engine.command(device.ref.device_id, body, now)
        log.info("command %s to %s: %s %s", ack.command_id, device.ref.key, ack.status, ack.reason or "")
        self.links[gateway_id].ack(device.ref, ack_payload(ack.command_id, ack.status, ack.reason))
