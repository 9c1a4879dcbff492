"""bench/ingest: how fast fmon ingest drains a real Mosquitto, against mosquitto_sub alone.

Both consumers get the same treatment: a persistent session is created, N QoS 1 messages are
queued for it while it is away, then it connects and drains them. mosquitto_sub's drain rate
is the reference; fmon's rate counts readings stored in a real InfluxDB (decode, validation,
spool, acknowledgement, rules and alarms included). Prints a table and writes JSON to
bench/results/.

    .venv/bin/python -m bench.ingest [--messages 50000] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.harness import InfluxServer, MosquittoServer
from tests.harness.process import free_port

FMON = str(Path(sys.executable).parent / "fmon")
RESULTS = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    name: str
    messages: int
    readings: int
    seconds: float
    cpu_seconds: float = 0.0
    max_rss_mb: float = 0.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds


def payloads(site: str, count: int, batch: int) -> list[tuple[str, bytes]]:
    """`count` messages; with batch > 1 each is a gateway batch of `batch` readings."""
    start = datetime.now(UTC) - timedelta(hours=2)
    out = []
    for i in range(count):
        ts = int((start + timedelta(milliseconds=i)).timestamp() * 1000)
        if batch == 1:
            body = {"ts": ts, "seq": i, "metrics": {"co2_ppm": 400.0 + i % 500, "temp_c": 22.0}}
            out.append((f"fmon/v1/{site}/env/d{i % 1000}/telemetry", orjson.dumps(body)))
        else:
            readings = [{"device_id": f"d{j}", "family": "env", "ts": ts, "seq": i,
                         "metrics": {"co2_ppm": 400.0 + i % 500, "temp_c": 22.0}} for j in range(batch)]
            out.append((f"fmon/v1/{site}/gateway/gw{i % 10}/batch", orjson.dumps({"readings": readings})))
    return out


def publish(broker: MosquittoServer, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.monotonic_ns()}")
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(topic, body, qos=1) for topic, body in messages]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def mosquitto_sub_drain(broker: MosquittoServer, site: str, messages: list[tuple[str, bytes]]) -> Run:
    args = ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-c", "-i", f"ref-{site}",
            "-t", f"fmon/v1/{site}/#"]
    subprocess.run([*args, "-W", "1"], capture_output=True, check=False)  # create the session
    publish(broker, messages)
    start = time.perf_counter()
    proc = subprocess.run([*args, "-C", str(len(messages))], stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - start
    del proc
    return Run("mosquitto_sub (reference)", len(messages), len(messages), seconds)


def fmon_drain(broker: MosquittoServer, influx: InfluxServer, site: str, messages: list[tuple[str, bytes]],
               readings: int, data_dir: Path) -> Run:
    port = free_port()
    env = {**os.environ, "FMON_ENVIRONMENT": "development", "FMON_BROKER_URL": broker.url,
           "FMON_INFLUX_URL": influx.create_database(site), "FMON_DATA_DIR": str(data_dir), "FMON_SITE": site,
           "FMON_METRICS_PORT": str(port)}
    first = subprocess.Popen([FMON, "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_metric(port, "fmon_ingest_messages_total", 0, 60)  # metrics up; session about to exist
    time.sleep(2)  # let it subscribe
    first.terminate()
    first.wait(30)
    publish(broker, messages)
    worker = subprocess.Popen([FMON, "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_metric(port, "fmon_ingest_messages_total", 1, 60)
        start = time.perf_counter()
        cpu0 = cpu_seconds(worker.pid)
        wait_metric(port, "fmon_telemetry_stored_readings_total", readings, 600)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds(worker.pid) - cpu0
        rss = max_rss_mb(worker.pid)
    finally:
        worker.terminate()
        worker.wait(30)
    return Run("fmon ingest → InfluxDB (rules on)", len(messages), readings, seconds, cpu, rss)


def wait_metric(port: int, name: str, at_least: float, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            for line in httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text.splitlines():
                if line.startswith(name + " ") and float(line.split()[1]) >= at_least:
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{name} did not reach {at_least} in {deadline_s} s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def max_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1, help="readings per message (gateway batch if > 1)")
    args = parser.parse_args()
    broker, influx = MosquittoServer(), InfluxServer()
    broker.start()
    influx.start()
    try:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        messages = payloads(f"b{stamp[-6:]}", args.messages, args.batch)
        reference = mosquitto_sub_drain(broker, f"r{stamp[-6:]}", payloads(f"r{stamp[-6:]}", args.messages, args.batch))
        fmon = fmon_drain(broker, influx, f"b{stamp[-6:]}", messages, args.messages * args.batch,
                          Path(f"/tmp/fmon-bench-{stamp}"))
    finally:
        broker.stop()
        influx.stop()
    report(reference, fmon, args, stamp)


def report(reference: Run, fmon: Run, args: argparse.Namespace, stamp: str) -> None:
    ratio = fmon.messages_per_s / reference.messages_per_s
    print(f"{'consumer':38} {'messages/s':>11} {'readings/s':>11} {'cpu s':>7} {'max RSS MB':>10}")
    for run in (reference, fmon):
        print(f"{run.name:38} {run.messages_per_s:11.0f} {run.readings_per_s:11.0f} "
              f"{run.cpu_seconds:7.1f} {run.max_rss_mb:10.0f}")
    print(f"ratio fmon / mosquitto_sub (messages/s): {ratio:.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ingest-{stamp}-batch{args.batch}.json"
    out.write_text(json.dumps({"args": vars(args), "ratio": ratio,
                               "runs": [asdict(reference) | {"messages_per_s": reference.messages_per_s},
                                        asdict(fmon) | {"messages_per_s": fmon.messages_per_s,
                                                        "readings_per_s": fmon.readings_per_s}]}, indent=2))
    print(f"written {out.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
