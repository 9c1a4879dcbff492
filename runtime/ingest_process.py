"""The ingest process: MQTT → decode → rules → alarms, and readings → telemetry store."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from alarms.service import AlarmService
from core.broker import BrokerAddress
from core.clock import Clock
from core.domain import Reading
from core.settings import Settings
from core.topics import subscriptions
from ingest.mqtt import MqttConsumer
from ingest.processor import IngestProcessor
from ingest.writer import TelemetryWriter
from rules.engine import RuleEngine
from rules.library import default_rules
from runtime.bus import AlarmBusPublisher
from storage.influx import InfluxV1Store
from storage.sqlite_telemetry import SqliteTelemetryStore
from storage.state.database import StateDatabase
from storage.state.dead_letters import DeadLetterStore
from storage.telemetry import TelemetryStore

log = logging.getLogger(__name__)


def open_telemetry_store(settings: Settings) -> TelemetryStore:
    if settings.influx_url:
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        return InfluxV1Store(settings.influx_url, token=token)
    return SqliteTelemetryStore(settings.telemetry_sqlite_path)


class RulePipeline:
    """Readings through the rules into alarms, then on to the writer. Rules run before storage,
    so an alarm never waits for a telemetry write."""

    def __init__(self, engine: RuleEngine, alarms: AlarmService, writer: TelemetryWriter, clock: Clock) -> None:
        self._engine, self._alarms, self._writer, self._clock = engine, alarms, writer, clock
        self._lock = threading.Lock()  # readings and timer ticks come from different threads

    def on_readings(self, readings: Sequence[Reading]) -> None:
        with self._lock:
            changes = self._engine.process(readings)
        self._alarms.apply(changes)
        self._writer.submit(readings)

    def tick(self) -> None:
        with self._lock:
            changes = self._engine.tick(self._clock.now())
        self._alarms.apply(changes)


@dataclass
class IngestProcess:
    consumer: MqttConsumer
    writer: TelemetryWriter
    publisher: AlarmBusPublisher
    pipeline: RulePipeline
    processor: IngestProcessor
    store: TelemetryStore
    tick_seconds: float

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="rule-ticks", daemon=True)

    def start(self) -> None:
        self.writer.start()
        self.publisher.start()
        self.consumer.start()
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        self.consumer.stop()
        self._ticker.join(timeout=5)
        self.writer.stop()
        self.publisher.stop()
        self.store.close()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.pipeline.tick()
            except Exception:
                log.exception("rule tick failed")


def build_ingest(settings: Settings, db: StateDatabase, clock: Clock) -> IngestProcess:
    address = BrokerAddress.parse(settings.broker_url)
    store = open_telemetry_store(settings)
    writer = TelemetryWriter(store, batch_size=settings.ingest_batch_size)
    publisher = AlarmBusPublisher(address)
    pipeline = RulePipeline(RuleEngine(default_rules()), AlarmService(db, clock, publisher), writer, clock)
    processor = IngestProcessor(DeadLetterStore(db), pipeline.on_readings)
    consumer = MqttConsumer(
        address, f"fmon-ingest-{uuid.uuid4().hex[:8]}", subscriptions(settings.site), processor, clock,
        batch_size=settings.ingest_batch_size, flush_seconds=settings.ingest_flush_seconds,
    )
    return IngestProcess(consumer, writer, publisher, pipeline, processor, store, settings.rule_tick_seconds)
