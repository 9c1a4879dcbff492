"""bench/rules: rule evaluation cost per reading against the number of rules loaded (DESIGN.md §8).

`RuleEngine.process` is timed over readings of 100 000 devices (six families, 100 sites) with
10, 1 000 and 10 000 rules. The rules are generated: ten realistic thresholds and bands on the
families' real metrics, plus thresholds, bands and rates on other metrics with distinct ids, so
that only a few rules match any reading. Each reading carries its family's real metrics and one
auxiliary metric. In the main runs no generated rule watches the auxiliary metrics (more rules
loaded, the same rules matching); the `overlap` run makes every reading also match one of the
10 000 rules, to show what a matching rule costs. Each configuration runs in a fresh process,
so its memory figures are its own. The last run repeats 10 000 rules with batch (numpy)
evaluation switched off: the reference for the vectorized threshold and band rules, measured in
the same run. Prints a table and writes JSON to bench/results/.

    .venv/bin/python -m bench.rules [--devices 100000] [--passes 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from core.domain import DeviceRef, Family, Reading
from rules.engine import RuleEngine
from rules.model import Rule

RESULTS = Path(__file__).resolve().parent / "results"
T0 = datetime(2026, 11, 21, tzinfo=UTC)
FAMILIES = (Family.ENV, Family.PUMP, Family.METER, Family.GAS, Family.ELEVATOR, Family.FIRE_PANEL)
AUX_KEYS = 1_665  # auxiliary metrics per family: 6 x 1 665 + 10 = 10 000 rules in the overlap run
BATCH = 1_000

# (family, metric, condition, normal value range)
BASE: tuple[tuple[Family, str, dict[str, Any], tuple[float, float]], ...] = (
    (Family.ENV, "co2_ppm", {"kind": "threshold", "op": ">", "limit": 1000, "deadband": 50}, (400, 1005)),
    (Family.ENV, "temp_c", {"kind": "band", "low": 10, "high": 35, "deadband": 1}, (18, 35.2)),
    (Family.ENV, "rh_pct", {"kind": "threshold", "op": ">", "limit": 80}, (30, 80.2)),
    (Family.PUMP, "vibration_mm_s", {"kind": "threshold", "op": ">", "limit": 7.1, "deadband": 0.5}, (1, 7.12)),
    (Family.PUMP, "bearing_temp_c", {"kind": "threshold", "op": ">", "limit": 90}, (40, 90.2)),
    (Family.METER, "voltage_v", {"kind": "band", "low": 198, "high": 242}, (215, 242.1)),
    (Family.METER, "power_kw", {"kind": "threshold", "op": ">", "limit": 500}, (0, 501)),
    (Family.GAS, "lel_pct", {"kind": "threshold", "op": ">=", "limit": 25, "deadband": 2}, (0, 25.05)),
    (Family.GAS, "co_ppm", {"kind": "threshold", "op": ">", "limit": 50}, (0, 50.1)),
    (Family.ELEVATOR, "speed_ms", {"kind": "threshold", "op": ">", "limit": 2.5}, (0, 2.502)),
)


def rule(rule_id: str, family: Family, condition: dict[str, Any], on_delay: str = "0s") -> Rule:
    return Rule.model_validate({
        "id": rule_id, "family": family.value, "condition": condition, "on_delay": on_delay, "category": "bench",
        "grade": 3, "playbook": "bench", "message_zh": "{device} {value}", "message_en": "{device} {value}",
        "cite": "bench"})


def make_rules(count: int, overlap: bool) -> list[Rule]:
    """Ten base rules, then generated rules on auxiliary metrics (`aux<k>`; with `overlap` the
    ones readings carry, otherwise ones they never carry)."""
    rules = [rule(f"base.{i}", family, {"metric": metric, **cond}, "60s" if i == 0 else "0s")
             for i, (family, metric, cond, _range) in enumerate(BASE[:count])]
    for i in range(count - len(rules)):
        family, key = FAMILIES[i % len(FAMILIES)], i // len(FAMILIES) + (0 if overlap else 1_000_000)
        metric = f"aux{key}"
        kinds = ({"kind": "threshold", "metric": metric, "op": ">", "limit": 90.0},
                 {"kind": "band", "metric": metric, "low": 5.0, "high": 95.0},
                 {"kind": "rate", "metric": metric, "window": "10m", "op": ">", "limit": 50.0})
        rules.append(rule(f"gen.{family.value}.{i}", family, kinds[0 if i % 10 < 8 else 1 + i % 2]))
    return rules


def readings(devices: int, passes: int, seed: int) -> Iterator[tuple[int, list[Reading]]]:
    """(pass, batch): every device once per pass, one minute of data time apart."""
    rng = random.Random(seed)
    refs = [DeviceRef(f"site{i % 100}", FAMILIES[i % len(FAMILIES)], f"d{i}") for i in range(devices)]
    aux = {ref: f"aux{rng.randrange(AUX_KEYS)}" for ref in refs}  # a device reports the same metrics each time
    base = {f: [(metric, span) for family, metric, _c, span in BASE if family is f] for f in FAMILIES}
    for p in range(passes):
        ts = T0 + timedelta(minutes=p)
        for start in range(0, devices, BATCH):
            batch = []
            for ref in refs[start:start + BATCH]:
                metrics: dict[str, float] = {m: rng.uniform(*span) for m, span in base[ref.family]}
                metrics[aux[ref]] = rng.uniform(10, 90)
                batch.append(Reading(ref, ts, metrics))
            yield p, batch


@dataclass
class Result:
    rules: int
    overlap: bool
    vectorized: bool
    devices: int
    readings: int
    first_pass_readings_per_s: float
    readings_per_s: float  # steady state (passes after the first), median batch
    us_per_reading: float
    best_us_per_reading: float  # the fastest batch: what the engine costs when nothing else runs
    take_dirty_us_per_reading: float
    rule_evaluations_per_reading: float
    changes: int
    tick_ms: float
    states: int
    rss_mb: float
    hwm_mb: float
    maxrss_mb: float
    rss_before_mb: float


def run(count: int, overlap: bool, vectorized: bool, devices: int, passes: int, seed: int) -> Result:
    """One configuration, in its own process."""
    engine = RuleEngine(make_rules(count, overlap), vectorized=vectorized)
    evaluations = _evaluations_per_reading(count, overlap)
    before = _status_mb("VmRSS")
    first: list[float] = []  # seconds per reading of each batch: creating state, then steady
    steady: list[float] = []
    saving: list[float] = []  # seconds per reading of `take_dirty`, which the ingest pipeline calls per batch
    changes = states = 0
    for p, batch in readings(devices, passes, seed):
        started = time.perf_counter()
        changes += len(engine.process(batch))
        processed = time.perf_counter()
        dirty = len(engine.take_dirty())
        (first if p == 0 else steady).append((processed - started) / len(batch))
        saving.append((time.perf_counter() - processed) / len(batch))
        states += dirty if p == 0 else 0  # every state is new, once, in the first pass
    started = time.perf_counter()
    engine.tick(T0 + timedelta(minutes=passes))
    tick_ms = (time.perf_counter() - started) * 1000
    steady = steady or first
    per_reading = statistics.median(steady)  # the median batch: robust to a busy machine
    return Result(
        rules=count, overlap=overlap, vectorized=vectorized, devices=devices, readings=devices * passes,
        first_pass_readings_per_s=1 / statistics.mean(first), readings_per_s=1 / per_reading,
        us_per_reading=per_reading * 1e6, best_us_per_reading=min(steady) * 1e6,
        take_dirty_us_per_reading=statistics.median(saving) * 1e6, rule_evaluations_per_reading=evaluations,
        changes=changes, tick_ms=tick_ms, states=states, rss_mb=_status_mb("VmRSS"), hwm_mb=_status_mb("VmHWM"),
        maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_before_mb=before)


def _evaluations_per_reading(count: int, overlap: bool) -> float:
    """Rules a reading's metrics select, averaged over the six families."""
    base = min(count, len(BASE))
    extra = count - base
    matched_aux = min(extra, AUX_KEYS * len(FAMILIES)) / (AUX_KEYS * len(FAMILIES)) if overlap else 0.0
    return base / len(FAMILIES) + matched_aux


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_isolated(count: int, overlap: bool, vectorized: bool, devices: int, passes: int, seed: int) -> Result:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(run, count, overlap, vectorized, devices, passes, seed).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--passes", type=int, default=3, help="readings per device (the first pass creates state)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    configs = [(10, False, True), (1_000, False, True), (10_000, False, True), (10_000, True, True),
               (10_000, False, False)]
    results = []
    print(f"{'rules':>6} {'overlap':>7} {'batch':>5} {'readings/s':>11} {'first pass/s':>12} {'us/reading':>10} "
          f"{'best':>5} {'+take_dirty':>11} {'evals/reading':>13} {'states':>7} {'tick ms':>8} {'RSS MB':>7} "
          f"{'HWM MB':>7}")
    for count, overlap, vectorized in configs:
        r = run_isolated(count, overlap, vectorized, args.devices, args.passes, args.seed)
        results.append(r)
        print(f"{r.rules:>6} {'yes' if r.overlap else 'no':>7} {'numpy' if r.vectorized else 'no':>5} "
              f"{r.readings_per_s:>11,.0f} "
              f"{r.first_pass_readings_per_s:>12,.0f} {r.us_per_reading:>10.2f} {r.best_us_per_reading:>5.2f} "
              f"{r.take_dirty_us_per_reading:>11.2f} "
              f"{r.rule_evaluations_per_reading:>13.2f} {r.states:>7} {r.tick_ms:>8.1f} {r.rss_mb:>7.0f} "
              f"{r.hwm_mb:>7.0f}")
    ratio = results[2].us_per_reading / results[0].us_per_reading
    best = results[2].best_us_per_reading / results[0].best_us_per_reading
    print(f"per-reading cost, 10 000 rules / 10 rules: {ratio:.2f} median batch, {best:.2f} fastest batch "
          "(goal: about 1)")
    speedup = results[4].us_per_reading / results[2].us_per_reading
    print(f"batch (numpy) evaluation vs per-reading evaluation, 10 000 rules: {speedup:.2f}x readings/s")
    _write(args, results, ratio, best, speedup)


def _write(args: argparse.Namespace, results: list[Result], ratio: float, best: float, speedup: float) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"rules-{stamp}.json"
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    out.write_text(json.dumps({"args": vars(args), "machine": machine, "ratio_10000_vs_10": ratio,
                               "ratio_10000_vs_10_fastest_batch": best,
                               "vectorized_speedup_10000": speedup, "runs": [asdict(r) for r in results]},
                              indent=2))
    print(f"written {out.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
