"""Prometheus metrics of an ingest worker, read from its live counters at scrape time.

Loss accounting (docs/message-loss.md): rejections are
dead-lettered and store outages wait in the spool, so the one loss inside fmon is a batch the
spool or the state database could not take before the consumer gave up on it (only while
stopping). `fmon_ingest_dropped_total` counts its QoS 0 messages (lost) and
`fmon_ingest_abandoned_messages_total` its QoS 1 messages (the broker redelivers them);
`fmon_ingest_unaccepted_messages` shows a batch failing right now, before anything is lost,
and is the one to alert on. Drops in the broker itself are `fmon_broker_messages_dropped_total`
(runtime.broker_stats). Messages lost in a SIGKILL or power cut are not counted anywhere: QoS 1
ones are redelivered, QoS 0 ones are gone (publish with QoS 1).
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
        yield _counter("fmon_ingest_dropped", "QoS 0 messages received but never spooled nor dead-lettered: their "
                       "batch failed until the consumer gave up (must stay 0)", c.dropped)
        yield _counter("fmon_ingest_abandoned_messages", "QoS 1 messages of batches given up unspooled, left to "
                       "the broker to redeliver", c.abandoned)
        yield _counter("fmon_ingest_accept_failures", "attempts to spool a batch that failed (retried)",
                       c.accept_failures)
        yield GaugeMetricFamily("fmon_ingest_unaccepted_messages", "messages of a batch that cannot be spooled "
                                "right now, held in memory only", value=c.unaccepted)
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
        devices = GaugeMetricFamily("fmon_devices", "devices this worker tracks (the registry's and those seen), "
                                    "by presence", labels=["state"])
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
