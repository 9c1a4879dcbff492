"""No silent loss: every published reading is stored exactly once through a store outage and
a SIGKILL of the ingest worker.

`fmon ingest` runs as a real process against real Mosquitto and InfluxDB. While a publisher
sends readings (QoS 1, per-device `seq`), InfluxDB is frozen (SIGSTOP) for 30 s and, during the
outage, the worker is killed with SIGKILL and restarted. Afterwards InfluxDB holds every
(device, seq) exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.harness import InfluxServer, MosquittoServer
from tests.harness.process import free_port

FMON = str(Path(sys.executable).parent / "fmon")
DEVICES = 20
READINGS_PER_DEVICE = 150
OUTAGE_S = 30


class IngestWorker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.metrics_url = f"http://127.0.0.1:{env['FMON_METRICS_PORT']}/"
        self._log = log.open("ab")
        self.proc = subprocess.Popen([FMON, "ingest"], env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def metric(self, name: str) -> float | None:
        try:
            text = httpx.get(self.metrics_url, timeout=2).text
        except httpx.TransportError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def wait_for(self, name: str, at_least: float, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "fmon ingest exited"
            value = self.metric(name)
            if value is not None and value >= at_least:
                return
            time.sleep(0.2)
        raise AssertionError(f"{name} did not reach {at_least} within {deadline_s} s (last {self.metric(name)})")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self._log.close()


@pytest.fixture
def env(mosquitto: MosquittoServer, influx_db: str, tmp_path: Path, unique_id: str) -> dict[str, str]:
    return {
        **os.environ,
        "FMON_ENVIRONMENT": "development",
        "FMON_BROKER_URL": mosquitto.url,
        "FMON_INFLUX_URL": influx_db,
        "FMON_DATA_DIR": str(tmp_path / "data"),
        "FMON_SITE": unique_id,
        "FMON_METRICS_PORT": str(free_port()),
        "FMON_INGEST_BATCH_SIZE": "500",
    }


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[list[IngestWorker]]:
    started: list[IngestWorker] = []
    yield started
    for worker in started:
        worker.stop()


def publish_all(broker: MosquittoServer, site: str, start: datetime, done: threading.Event) -> None:
    """Every device's readings, paced over ~10 s, QoS 1, each publish confirmed by the broker."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{site}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    for seq in range(1, READINGS_PER_DEVICE + 1):
        infos = [
            client.publish(f"fmon/v1/{site}/env/dev-{d}/telemetry", orjson.dumps({
                "ts": int((start + timedelta(seconds=seq)).timestamp() * 1000), "seq": seq,
                "metrics": {"co2_ppm": 400.0 + seq, "temp_c": 21.5}}), qos=1)
            for d in range(DEVICES)
        ]
        for info in infos:
            info.wait_for_publish(30)
        time.sleep(0.07)
    client.disconnect()
    client.loop_stop()
    done.set()


def prove_consuming(worker: IngestWorker, broker: MosquittoServer, site: str) -> None:
    """Publish warm-up readings until the worker has counted one: its persistent session exists."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"warm-{site}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    deadline = time.monotonic() + 30
    while worker.metric("fmon_ingest_readings_total") in (None, 0.0) and time.monotonic() < deadline:
        client.publish(f"fmon/v1/{site}/env/warmup/telemetry",
                       orjson.dumps({"metrics": {"co2_ppm": 400}}), qos=1).wait_for_publish(5)
        time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    worker.wait_for("fmon_ingest_readings_total", 1, 5)


def stored_seqs(influxdb: InfluxServer, database: str, site: str) -> dict[str, list[int]]:
    body = influxdb.query(database, f"SELECT \"seq\" FROM \"env\" WHERE \"site\"='{site}' GROUP BY \"device\"")
    series = body["results"][0].get("series", [])
    return {s["tags"]["device"]: [row[1] for row in s["values"]] for s in series}


def test_outage_and_sigkill_lose_nothing_and_duplicate_nothing(
    env: dict[str, str], workers: list[IngestWorker], mosquitto: MosquittoServer, influxdb: InfluxServer,
    influx_db: str, unique_id: str, tmp_path: Path,
) -> None:
    log = tmp_path / "ingest.log"
    first = IngestWorker(env, log)
    workers.append(first)
    start = datetime.now(UTC) - timedelta(hours=1)
    published = threading.Event()
    prove_consuming(first, mosquitto, unique_id)

    publisher = threading.Thread(target=publish_all, args=(mosquitto, unique_id, start, published), daemon=True)
    publisher.start()
    first.wait_for("fmon_ingest_readings_total", DEVICES * 20, 30)

    os.kill(influxdb.pid, signal.SIGSTOP)  # the store hangs: writes time out
    try:
        first.wait_for("fmon_telemetry_write_retries_total", 1, 30)
        first.wait_for("fmon_ingest_readings_total", DEVICES * 60, 30)
        first.kill()  # mid-stream, with readings spooled but not stored, and messages in flight
        second = IngestWorker(env, log)
        workers.append(second)
        # The publisher may have finished already (slow machine): prove the new worker consumes.
        prove_consuming(second, mosquitto, unique_id)
        time.sleep(max(0.0, OUTAGE_S - 15))  # keep the outage going (the clock of the scenario)
    finally:
        os.kill(influxdb.pid, signal.SIGCONT)

    assert published.wait(120), "publisher did not finish"
    seqs = wait_until_stored(influxdb, unique_id, unique_id, deadline_s=120)  # database named after the test
    expected = list(range(1, READINGS_PER_DEVICE + 1))
    assert set(seqs) == {f"dev-{d}" for d in range(DEVICES)}
    for device, values in seqs.items():
        assert sorted(values) == expected, f"{device}: {len(values)} stored, missing {set(expected) - set(values)}"
    assert second.metric("fmon_ingest_dropped_total") == 0
    assert "Traceback" not in log.read_text()


def wait_until_stored(influxdb: InfluxServer, database: str, site: str, deadline_s: float) -> dict[str, list[int]]:
    deadline = time.monotonic() + deadline_s
    seqs: dict[str, list[int]] = {}
    while time.monotonic() < deadline:
        seqs = {k: v for k, v in stored_seqs(influxdb, database, site).items() if k != "warmup"}
        if len(seqs) == DEVICES and all(len(v) >= READINGS_PER_DEVICE for v in seqs.values()):
            return seqs
        time.sleep(1)
    counts = {k: len(v) for k, v in seqs.items()}
    raise AssertionError(f"not everything stored in time: {counts}")
