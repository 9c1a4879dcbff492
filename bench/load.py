"""bench/load: the highest rate `fmon simulate load` reaches against a real Mosquitto.

For each mode (one JSON message per reading, JSON gateway batches of 100, Sparkplug B DDATA)
it asks for more than one client can publish and records what the broker acknowledged, then
checks that a request of 80 % of that is reached. QoS 1 throughout. Prints a table and writes
JSON to bench/results/.

    .venv/bin/python -m bench.load [--duration 5]
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.broker import BrokerAddress
from simulators.load import LoadSpec, run_load
from tests.harness import MosquittoServer

RESULTS = Path(__file__).resolve().parent / "results"
ASK = {"json": 100_000.0, "batch": 3_000_000.0, "sparkplug": 100_000.0}  # more than one client manages


def measure(address: BrokerAddress, mode: str, duration: float) -> dict[str, Any]:
    ceiling = run_load(address, LoadSpec(1000, ASK[mode], duration, mode=mode, site=f"bench-{mode}"))  # type: ignore[arg-type]
    target = round(0.8 * ceiling.readings_per_s, -2)
    check = run_load(address, LoadSpec(1000, target, duration, mode=mode, site=f"bench-{mode}"))  # type: ignore[arg-type]
    return {"mode": mode, "max_readings_per_s": ceiling.readings_per_s, "max_messages_per_s": ceiling.messages_per_s,
            "at_80_percent": {"requested": target, "achieved": check.readings_per_s, "reached": check.reached},
            "ceiling_run": ceiling.as_json(), "check_run": check.as_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    args = parser.parse_args()
    broker = MosquittoServer()
    broker.start()
    try:
        address = BrokerAddress.parse(broker.url)
        rows = [measure(address, mode, args.duration) for mode in ("json", "batch", "sparkplug")]
    finally:
        broker.stop()
    print(f"{'mode':10} {'max readings/s':>15} {'max messages/s':>15} {'80% reached':>12}")
    for row in rows:
        print(f"{row['mode']:10} {row['max_readings_per_s']:>15,.0f} {row['max_messages_per_s']:>15,.0f} "
              f"{row['at_80_percent']['reached']!s:>12}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"load-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({"duration_s": args.duration, "qos": 1, "runs": rows}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
