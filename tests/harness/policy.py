"""What a test does when a service it needs is not installed: skip locally, fail in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

from .errors import ServiceUnavailable


def in_ci() -> bool:
    """True when the environment variable CI is "true"."""
    return os.environ.get("CI") == "true"


def service_unavailable(exc: ServiceUnavailable) -> NoReturn:
    """Skip the current test, or fail it under CI=true (a skipped real-service test hides a gap)."""
    if in_ci():
        pytest.fail(
            f"{exc} [CI=true: a missing service is a failure, not a skip]",
            pytrace=False,
        )
    pytest.skip(str(exc))
