"""Request parameter types shared by the routes: bounded times and database ids.

Validated at the boundary so that bad input is a 422 naming the parameter (FastAPI puts the
parameter's name in `detail[].loc`), never a 500 from the database driver: a naive time cannot be
compared with the aware ones fmon keeps, a year-1 time overflows when converted to UTC, and an
id above 2**63 - 1 does not fit the BIGINT/INTEGER columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, AwareDatetime, Field

MAX_ID = 2**63 - 1  # the largest 64-bit signed integer: SQLite INTEGER, PostgreSQL BIGINT
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)  # far from datetime.max: converting to UTC must not overflow


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return value.astimezone(UTC)


# A time with a UTC offset ("2026-11-21T08:00:00Z" or "+08:00") within a sane range, as UTC.
Instant = Annotated[AwareDatetime, AfterValidator(_in_range)]
# A database id in a path (/alarms/{alarm_id}) or in a body.
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
