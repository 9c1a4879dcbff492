"""Batch evaluation of threshold and band rules with numpy.

A threshold or band rule whose alarm is idle (not active, nothing pending) does nothing when a
reading is inside its limits: the condition stays false and no timer starts. So for a batch only
two kinds of (reading, rule) pairs need the per-reading path of the engine: readings that breach
the limit, and readings of devices where the rule is live (active, pending on- or off-delay).
`candidates` finds them with one comparison per rule over a column of the batch's values, instead
of one Python call per reading and rule. The engine keeps, per batched rule, the set of source
keys that are live (`track`), a superset is harmless: those pairs are simply evaluated.

Not for: stateful kinds (rate, anomaly, count) or kinds on text values (state), which need every
reading; they stay on the per-reading path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from core.domain import Family, Reading
from rules.model import COMPARE, Band, Rule, Threshold
from rules.timing import Timing

Column = tuple[Family, str]
NAN = float("nan")
Live = dict[str, set[str]]  # rule id -> source keys whose alarm is active or pending


def batchable(rule: Rule) -> bool:
    """Threshold and band rules on a device's own value (not per zone, not grouped)."""
    return isinstance(rule.condition, Threshold | Band)


def breaches(rule: Rule, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """The readings whose value is outside the rule's limits (deadbands only matter once live)."""
    c = rule.condition
    if isinstance(c, Threshold):
        return np.asarray(COMPARE[c.op](values, c.limit), dtype=np.bool_)
    assert isinstance(c, Band)
    return (values < c.low) | (values > c.high)


def candidates(readings: Sequence[Reading], by_column: Mapping[Column, list[Rule]],
               live: Live) -> dict[int, list[Rule]]:
    """For each reading index, the batched rules it must be evaluated against, in reading order."""
    index, values, devices, names = _columns(readings, by_column)
    out: dict[int, list[Rule]] = defaultdict(list)
    for column, rows_of_column in index.items():  # the columns present in the batch, not all rules
        rows, column_values = np.asarray(rows_of_column), np.asarray(values[column], dtype=np.float64)
        column_devices = np.asarray(devices[column])
        for rule in by_column[column]:
            hot = set(column_devices[breaches(rule, column_values)].tolist())
            hot.update(names[key] for key in live.get(rule.id, ()) if key in names)
            if not hot:
                continue
            for row in rows[np.isin(column_devices, list(hot))].tolist():
                out[row].append(rule)
    return out


def _columns(readings: Sequence[Reading], by_column: Mapping[Column, list[Rule]]) -> tuple[
        dict[Column, list[int]], dict[Column, list[float]], dict[Column, list[int]], dict[str, int]]:
    """The batch as columns: per (family, metric) the reading indices, values (NaN for text) and
    device numbers (`names` maps a device key to its number in this batch)."""
    index: dict[Column, list[int]] = defaultdict(list)
    values: dict[Column, list[float]] = defaultdict(list)
    devices: dict[Column, list[int]] = defaultdict(list)
    names: dict[str, int] = {}
    for row, reading in enumerate(readings):
        family = reading.device.family
        number: int | None = None
        for metric, value in reading.metrics.items():
            column = (family, metric)
            if column not in by_column:
                continue
            if number is None:
                number = names.setdefault(reading.device.key, len(names))
            index[column].append(row)
            # a value that is not a number breaches nothing, but a live rule still sees it
            values[column].append(NAN if isinstance(value, bool) or not isinstance(value, int | float) else value)
            devices[column].append(number)
    return index, values, devices, names


def track(sources: set[str], source_key: str, timing: Timing) -> None:
    """Keep `sources` equal to the live sources of one rule after an evaluation."""
    if timing.active or timing.pending_since is not None or timing.clearing_since is not None:
        sources.add(source_key)
    else:
        sources.discard(source_key)


def live_sources(slots: Mapping[tuple[str, str], Any], rules: Mapping[str, Rule]) -> Live:
    """The live sources of every batched rule, from the engine's slots (after install or restore)."""
    live: Live = {rule_id: set() for rule_id, rule in rules.items() if batchable(rule)}
    for (rule_id, source_key), slot in slots.items():
        if rule_id in live:
            track(live[rule_id], source_key, slot.timing)
    return live
