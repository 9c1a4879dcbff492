"""bench/latency: publish → alarm on the WebSocket, under load (DESIGN.md §8).

Starts a real Mosquitto, InfluxDB and PostgreSQL, then `fmon ingest` and `fmon api` as separate
processes, as in production. A background load of single-reading JSON messages runs at the
requested rate (`fmon simulate load`); meanwhile probe readings of gas detectors at 30 %LEL
(the level-1 rule has no on-delay) are published one at a time, each from a new device, and
the time from publish to the `raised` event on `/api/v1/stream` is recorded. The idle run (no
background load) is the reference measured in the same run. Prints p50/p95/p99/max per run and
writes JSON to bench/results/.

    .venv/bin/python -m bench.latency [--rate 15000] [--probes 200]

DESIGN.md's goal: p50 ≤ 20 ms and p99 ≤ 100 ms at half the sustained maximum load (bench/ingest
measures the maximum).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from websockets.sync.client import connect as ws_connect

from api.security import hash_password
from core.domain import Role
from storage.state.database import StateDatabase
from storage.state.users import UserStore
from tests.harness import InfluxServer, MosquittoServer, PostgresServer
from tests.harness.process import free_port

FMON = str(Path(sys.executable).parent / "fmon")
RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "bench-latency-password"


@dataclass
class Run:
    name: str
    load_rate: float
    probes: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    missed: int


class Fmon:
    """`fmon ingest` and `fmon api` on the given services, with an operator to log in."""

    def __init__(self, broker: MosquittoServer, influx: InfluxServer, postgres: PostgresServer, site: str,
                 data_dir: Path) -> None:
        self.api_port = free_port()
        database = postgres.create_database(f"lat_{site}")
        self.env = {**os.environ, "FMON_ENVIRONMENT": "development", "FMON_BROKER_URL": broker.url,
                    "FMON_INFLUX_URL": influx.create_database(site), "FMON_DATABASE_URL": database,
                    "FMON_DATA_DIR": str(data_dir), "FMON_API_PORT": str(self.api_port),
                    "FMON_METRICS_PORT": str(free_port()), "FMON_JWT_SECRET": uuid.uuid4().hex * 2}
        db = StateDatabase(database)
        db.upgrade()
        UserStore(db).add("operator", hash_password(PASSWORD), Role.OPERATOR, datetime.now(UTC))
        db.dispose()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.processes = [subprocess.Popen([FMON, "ingest"], env=self.env, **quiet),
                          subprocess.Popen([FMON, "api"], env=self.env, **quiet)]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def token(self, deadline_s: float = 60) -> str:
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                response = httpx.post(f"{self.base_url}/api/v1/auth/token",
                                      data={"username": "operator", "password": PASSWORD}, timeout=5)
                response.raise_for_status()
                return str(response.json()["access_token"])
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)


def probe(broker: MosquittoServer, fmon: Fmon, site: str, count: int, gap_s: float) -> tuple[list[float], int]:
    """Publish `count` probes `gap_s` apart, each from a device never seen before (a device whose
    alarm is already active raises nothing); return the latencies in ms and how many never arrived."""
    run = uuid.uuid4().hex[:6]
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = threading.Event()
    url = fmon.base_url.replace("http", "ws") + f"/api/v1/stream?token={fmon.token()}"
    with ws_connect(url, open_timeout=10, max_size=None) as ws:
        assert orjson.loads(ws.recv(10)) == {"type": "hello"}

        def listen() -> None:
            while not done.is_set():
                try:
                    message = orjson.loads(ws.recv(0.5))
                except TimeoutError:
                    continue
                except Exception:
                    return
                alarm = message.get("alarm", {})
                key = alarm.get("device_id")
                if message.get("event") == "raised" and key in sent:
                    latencies.append((time.perf_counter() - sent.pop(key)) * 1000)

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}")
        client.connect(broker.host, broker.port)
        client.loop_start()
        for i in range(count):
            device = f"probe-{run}-{i}"
            body = orjson.dumps({"ts": int(time.time() * 1000), "seq": 0, "metrics": {"lel_pct": 30.0}})
            sent[device] = time.perf_counter()
            client.publish(f"fmon/v1/{site}/gas/{device}/telemetry", body, qos=1)
            time.sleep(gap_s)
        deadline = time.monotonic() + 10
        while sent and time.monotonic() < deadline:
            time.sleep(0.05)
        done.set()
        listener.join(2)
        client.disconnect()
        client.loop_stop()
    return latencies, len(sent)


def summary(name: str, rate: float, latencies: list[float], missed: int) -> Run:
    ordered = sorted(latencies) or [float("nan")]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return Run(name, rate, len(latencies), statistics.median(ordered), pct(0.95), pct(0.99), ordered[-1], missed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=15_000, help="background readings/s (half the sustained max)")
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between probes")
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    site = f"l{stamp[-6:]}"
    services = [MosquittoServer(), InfluxServer(), PostgresServer()]
    for service in services:
        service.start()
    broker, influx, postgres = services
    fmon = Fmon(broker, influx, postgres, site, Path(f"/tmp/fmon-latency-{stamp}"))
    runs: list[Run] = []
    try:
        fmon.token()
        probe(broker, fmon, site, 20, args.gap)  # warm-up: first connections, caches, JIT of SQL
        idle = probe(broker, fmon, site, args.probes, args.gap)
        runs.append(summary("idle (reference)", 0, *idle))
        duration = args.probes * args.gap + 15
        load = subprocess.Popen([FMON, "simulate", "load", "--broker", broker.url, "--site", site, "--devices",
                                 "1000", "--rate", str(args.rate), "--duration", str(duration)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(5)  # let the load reach its rate
        loaded = probe(broker, fmon, site, args.probes, args.gap)
        runs.append(summary(f"under load (asked {args.rate:.0f} readings/s)", args.rate, *loaded))
        output, _ = load.communicate(timeout=duration + 60)
        print(output.strip().splitlines()[-1] if output.strip() else "load generator printed nothing")
    finally:
        fmon.stop()
        for service in reversed(services):
            service.stop()
    report(runs, args, stamp)


def report(runs: list[Run], args: argparse.Namespace, stamp: str) -> None:
    print(f"{'run':36} {'probes':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'missed':>6}")
    for r in runs:
        figures = " ".join(f"{v:7.1f}" for v in (r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms))
        print(f"{r.name:36} {r.probes:6d} {figures} {r.missed:6d}")
    if len(runs) == 2:
        print(f"p50 under load / idle: {runs[1].p50_ms / runs[0].p50_ms:.2f}; "
              f"p99 under load / idle: {runs[1].p99_ms / runs[0].p99_ms:.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"latency-{stamp}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": [asdict(r) for r in runs]}, indent=2))
    print(f"written {out.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
