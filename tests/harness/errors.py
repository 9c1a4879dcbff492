"""Exceptions raised by the test harness when a real service cannot be used."""

from __future__ import annotations


class ServiceUnavailable(RuntimeError):
    """A binary a service needs is not installed; names the Debian package that provides it."""

    def __init__(self, what: str, package: str) -> None:
        super().__init__(
            f"{what} not found: install the Debian package '{package}' "
            f"(apt-get install -y {package}), or run scripts/test as root, which installs it"
        )
        self.what = what
        self.package = package


class ServiceStartError(RuntimeError):
    """A service was installed but did not become ready; the message ends with its log tail."""

    def __init__(self, message: str, *, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited
