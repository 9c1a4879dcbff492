"""Prometheus metrics of an ingest worker, read from its live counters at scrape time.

`fmon_ingest_dropped_total` counts readings lost without a trace; no code path drops a
reading (rejections are dead-lettered, outages wait in the spool), so it must stay 0 and
dashboards should alert when it does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.clock import Clock
from ingest.presence import PresenceTracker
from ingest.processor import IngestCounters
from ingest.spool import Spool
from ingest.writer import WriterCounters


@dataclass(eq=False)  # registries keep collectors in a set
class IngestCollector(Collector):
    counters: IngestCounters
    writer: WriterCounters
    spool: Spool
    queue_depth: Callable[[], int]
    clock: Clock
    presence: PresenceTracker

    def collect(self) -> Iterator[Metric]:
        c, w = self.counters, self.writer
        yield _counter("fmon_ingest_messages", "MQTT messages received", c.messages)
        yield _counter("fmon_ingest_readings", "readings accepted", c.readings)
        rejected = CounterMetricFamily("fmon_ingest_dead_letters", "messages dead-lettered, by reason",
                                       labels=["reason"])
        for reason, count in sorted(c.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield _counter("fmon_ingest_dropped", "readings lost without a dead letter (must stay 0)", c.dropped)
        yield _counter("fmon_telemetry_stored_values", "metric values written to the telemetry store",
                       w.stored_values)
        yield _counter("fmon_telemetry_stored_readings", "readings written to the telemetry store",
                       w.stored_readings)
        yield _counter("fmon_telemetry_rejected_readings", "readings the store refused (dead-lettered)",
                       w.rejected_readings)
        yield _counter("fmon_telemetry_write_retries", "store writes retried after an outage", w.retries)
        yield GaugeMetricFamily("fmon_ingest_queue_depth", "messages received, not yet decoded",
                                value=self.queue_depth())
        yield GaugeMetricFamily("fmon_spool_depth", "readings spooled, not yet in the store", value=self.spool.depth)
        yield GaugeMetricFamily("fmon_ingest_lag_seconds", "age of the oldest spooled batch", value=self._lag())
        online, offline = self.presence.counts()
        devices = GaugeMetricFamily("fmon_devices", "devices seen by this worker, by presence", labels=["state"])
        devices.add_metric(["online"], online)
        devices.add_metric(["offline"], offline)
        yield devices
        yield _counter("fmon_ingest_seq_gaps", "readings missing according to per-device seq",
                       sum(self.presence.seq_gaps.values()))

    def _lag(self) -> float:
        oldest = self.spool.oldest_appended()
        return 0.0 if oldest is None else max(0.0, (self.clock.now() - oldest).total_seconds())


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
