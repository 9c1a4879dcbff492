"""CSV files written by people (inventories, equipment ledgers): rows with their line numbers and
a checked header, every problem reported as (line, column, message) to the caller's collector.

Not for: what the columns mean (ingest.inventory, maintenance.ledger).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Protocol


class Problems(Protocol):
    """Collects problems; `raise_if_any` raises the caller's error when there are some."""

    def add(self, line: int, column: str, message: str) -> None: ...

    def raise_if_any(self) -> None: ...


def csv_rows(text: str, problems: Problems) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) of every non-blank row; a quoted cell may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                yield line, cells
            line = reader.line_num + 1
    except csv.Error as exc:
        problems.add(line, "row", f"not valid CSV: {exc}")


def csv_header(line: int, cells: list[str], known: Sequence[str], required: Sequence[str],
               problems: Problems) -> list[str]:
    """Column names, lower-case; unknown and repeated columns are reported and then ignored (as
    ""), so the rows are still checked; missing required columns stop here."""
    columns = [cell.strip().lower() for cell in cells]
    for i, name in enumerate(columns):
        if name and name not in known:  # columns without a name are ignored silently
            problems.add(line, name, f"unknown column (expected: {', '.join(known)})")
            columns[i] = ""
        elif name and name in columns[:i]:
            problems.add(line, name, "column given twice")
            columns[i] = ""
    missing = [name for name in required if name not in columns]
    for name in missing:
        problems.add(line, name, "required column is missing")
    if missing:
        problems.raise_if_any()
    return columns
