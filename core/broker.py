"""Broker addresses: `mqtt://[user:pass@]host[:port]` and `mqtts://…[?cafile=PATH]` URLs.

With `mqtts://` the broker's certificate is checked against the system's CA certificates, or
against the CA certificate file named by `cafile` (a private CA, as most sites use for their
broker).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"broker URL {cls._redacted(url)!r} must look like mqtt://host:port or mqtts://host:port")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ConfigError(f"broker URL {cls._redacted(url)!r} has a bad port") from None
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - {"cafile"})
        if unknown:
            raise ConfigError(f"broker URL {cls._redacted(url)!r}: unknown option {unknown[0]!r} (known: cafile)")
        ca_file = query["cafile"][-1] if "cafile" in query else None
        if ca_file is not None and not tls:
            raise ConfigError(f"broker URL {cls._redacted(url)!r}: cafile needs mqtts://")
        return cls(parts.hostname, port, tls, user, password, ca_file)

    @staticmethod
    def _redacted(url: str) -> str:
        parts = urlsplit(url)
        return url.replace(f":{parts.password}@", ":***@") if parts.password else url

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of an `mqtts://` address (certificate and host name checked), else None."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=self.ca_file)

    @property
    def url(self) -> str:
        """The URL without credentials, for logs."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"
