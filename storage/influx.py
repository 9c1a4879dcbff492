"""The production telemetry store: InfluxDB through its v1-compatible HTTP API.

Line protocol to `POST /write` and InfluxQL on `/query`; the one surface served by InfluxDB
1.x, 2.x (DBRP mapping, token auth) and 3.x Core (DESIGN.md §6). Measurement = family,
tags = site and device, fields = metrics. Numbers are always written as floats so that a
metric reported once as `3` and once as `3.5` never conflicts in field type.

Events go to the measurement `events`: tags site, family, device and code; fields the event's
attributes plus `index` (its position in the reading), `seq` and `historical`. Typed attributes
(`core.schema.EVENT_ATTRS`: loop, address, zone…) keep their type; free ones are written as
text, so that a gateway sending `3` once and `"3a"` later never makes InfluxDB refuse the
whole reading over a field-type conflict. InfluxDB keys a point by series and time, so an
event's time is its reading's millisecond plus `index` nanoseconds: two events of one reading
(two detectors of one zone in the same ms) are two points, and a replay overwrites them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from core.domain import DeviceRef, Family, MetricValue, Reading, device_ref, validate_id
from core.errors import StorageError, StoreUnavailable
from core.schema import event_attr_spec
from storage.telemetry import Bucket, Point, StoredEvent, from_epoch_ms, stored_value

BATCH_LINES = 5000
SCAN_CHUNK = 10_000  # points per chunk of a streamed (chunked=true) scan query
_NOT_METRICS = frozenset({"time", "site", "device", "seq", "historical"})
_FAMILIES = {family.value: family for family in Family}
EVENTS = "events"  # the measurement of events
_NOT_ATTRS = frozenset({"time", "site", "family", "device", "code", "index", "seq", "historical"})


NOT_ABOUT_THE_DATA = {401: "bad or missing token", 403: "token lacks write permission",
                      404: "database or bucket not found", 429: "throttled"}

class InfluxV1Store:
    """Writes and queries one InfluxDB database given as `http://host:port/db`."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        parts = urlsplit(url)
        self.database = parts.path.strip("/")
        base = f"{parts.scheme}://{parts.hostname}:{parts.port or 8086}"
        self._auth_params = {"u": parts.username, "p": parts.password} if parts.username else {}
        headers = {"Authorization": f"Token {token}"} if token else {}
        self._http = httpx.Client(base_url=base, headers=headers, timeout=timeout, transport=transport)

    def write(self, readings: Sequence[Reading]) -> int:
        lines = [line for reading in readings for line in _lines(reading)]
        lines += [line for reading in readings if reading.events for line in _event_lines(reading)]
        for start in range(0, len(lines), BATCH_LINES):
            self._post("\n".join(lines[start:start + BATCH_LINES]))
        return sum(len(reading.metrics) for reading in readings)

    def query(self, device: DeviceRef, metric: str, start: datetime, end: datetime) -> list[Point]:
        q = (
            f'SELECT "{_ident(metric)}" FROM "{device.family.value}" WHERE "site"=\'{device.site}\' '
            f"AND \"device\"='{device.device_id}' AND time >= '{_iso(start)}' AND time < '{_iso(end)}'"
        )
        series = self.influxql(q)
        rows: list[list[Any]] = series[0]["values"] if series else []
        return [Point(_parse_time(ts), _number(v)) for ts, v in rows if v is not None]

    def history(self, device: DeviceRef, metric: str, start: datetime, end: datetime,
                step: timedelta) -> list[Bucket]:
        field = f'"{_ident(metric)}"'
        seconds = max(1, int(step.total_seconds()))
        q = (
            f"SELECT mean({field}), min({field}), max({field}), count({field}) FROM \"{device.family.value}\" "
            f"WHERE \"site\"='{device.site}' AND \"device\"='{device.device_id}' "
            f"AND time >= '{_iso(start)}' AND time < '{_iso(end)}' GROUP BY time({seconds}s) fill(none)"
        )
        series = self.influxql(q)
        rows: list[list[Any]] = series[0]["values"] if series else []
        return [Bucket(_parse_time(ts), float(mean), float(low), float(high), int(count))
                for ts, mean, low, high, count in rows
                if isinstance(mean, int | float) and not isinstance(mean, bool)]

    def events(self, device: DeviceRef, start: datetime, end: datetime) -> list[StoredEvent]:
        q = (
            f"SELECT * FROM \"{EVENTS}\" WHERE \"site\"='{device.site}' AND \"family\"='{device.family.value}' "
            f"AND \"device\"='{device.device_id}' AND time >= '{_iso(start)}' AND time < '{_iso(end)}'"
        )
        params = {"db": self.database, "q": q, "epoch": "ns", **self._auth_params}
        result = self._request("GET", "/query", params=params).json()["results"][0]
        if "error" in result:
            raise StorageError(f"InfluxDB query failed on {self.database}: {result['error']}")
        found = [_stored_event(device, s["columns"], row) for s in result.get("series", []) for row in s["values"]]
        return sorted(found, key=lambda e: (e.ts, e.index))

    def scan(self, start: datetime, end: datetime, *, site: str | None = None) -> Iterator[Reading]:
        """Readings in [start, end), oldest first (see `TelemetryStore.scan`): one streamed,
        chunked `SELECT *` per measurement (family), merged by time."""
        where = f"time >= '{_iso(start)}' AND time < '{_iso(end)}'"
        if site is not None:
            where += f" AND \"site\"='{validate_id(site, 'site id')}'"
        families = [_FAMILIES[name] for name in self._measurements() if name in _FAMILIES]  # not `events`
        streams = [self._scan_family(family, where) for family in families]
        return heapq.merge(*streams, key=lambda reading: reading.ts)

    def _measurements(self) -> list[str]:
        series = self.influxql("SHOW MEASUREMENTS")
        return [str(row[0]) for row in series[0]["values"]] if series else []

    def _scan_family(self, family: Family, where: str) -> Iterator[Reading]:
        for columns, rows in self._stream(f'SELECT * FROM "{family.value}" WHERE {where}'):
            index = {name: i for i, name in enumerate(columns)}
            metrics = [(name, i) for name, i in index.items() if name not in _NOT_METRICS]
            for row in rows:
                yield _scanned(family, row, index, metrics)

    def _stream(self, q: str) -> Iterator[tuple[list[str], list[list[Any]]]]:
        """(columns, rows) of each chunk of a chunked query, as InfluxDB sends them."""
        params = {"db": self.database, "q": q, "epoch": "ms", "chunked": "true",
                  "chunk_size": str(SCAN_CHUNK), **self._auth_params}
        try:
            with self._http.stream("GET", "/query", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check_status(response, "/query")
                for line in response.iter_lines():
                    if line.strip():
                        yield from _chunk_series(orjson.loads(line), self.database)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB at {self._http.base_url} unreachable: {exc}") from exc

    def influxql(self, q: str) -> list[dict[str, Any]]:
        """Run one InfluxQL statement; return its series (may be empty)."""
        params = {"db": self.database, "q": q, **self._auth_params}
        body = self._request("GET", "/query", params=params).json()
        result = body["results"][0]
        if "error" in result:
            raise StorageError(f"InfluxDB query failed on {self.database}: {result['error']}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def ping(self) -> bool:
        try:
            return self._http.get("/ping").status_code == 204
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._http.close()

    def _post(self, body: str) -> None:
        # nanoseconds: events are spread over the ns of their reading's millisecond
        params = {"db": self.database, "precision": "ns", **self._auth_params}
        self._request("POST", "/write", params=params, content=body.encode())

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB at {self._http.base_url} unreachable: {exc}") from exc
        InfluxV1Store._check_status(response, path)
        return response

    @staticmethod
    def _check_status(response: httpx.Response, path: str) -> None:
        # A missing database, a bad token or throttling says nothing about the data: the readings
        # wait in the spool until the store is fixed, instead of being bisected into dead letters.
        if response.status_code in NOT_ABOUT_THE_DATA:
            raise StoreUnavailable(f"InfluxDB {path} answered {response.status_code} "
                                   f"({NOT_ABOUT_THE_DATA[response.status_code]}): {response.text[:200]}")
        if response.status_code >= 500:
            raise StoreUnavailable(f"InfluxDB {path} answered {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise StorageError(f"InfluxDB {path} refused ({response.status_code}): {response.text[:300]}")


def _chunk_series(body: dict[str, Any], database: str) -> Iterator[tuple[list[str], list[list[Any]]]]:
    for result in body.get("results", []):
        if "error" in result:
            raise StorageError(f"InfluxDB query failed on {database}: {result['error']}")
        for series in result.get("series", []):
            yield series["columns"], series.get("values", [])
    if "error" in body:
        raise StorageError(f"InfluxDB query failed on {database}: {body['error']}")


def _scanned(family: Family, row: list[Any], index: dict[str, int], metrics: list[tuple[str, int]]) -> Reading:
    device = device_ref(row[index["site"]], family.value, row[index["device"]])
    values = {name: stored_value(family, name, row[i]) for name, i in metrics if row[i] is not None}
    seq = row[index["seq"]] if "seq" in index else None
    historical = bool(row[index["historical"]]) if "historical" in index else False
    return Reading(device, from_epoch_ms(int(row[index["time"]])), values,
                   seq=None if seq is None else int(seq), historical=historical)


def _lines(r: Reading) -> Iterator[str]:
    fields = ",".join(f"{_key(k)}={_field(v)}" for k, v in r.metrics.items())
    if not fields:
        return
    extra = f",seq={r.seq}i" if r.seq is not None else ""
    extra += ",historical=true" if r.historical else ""
    dev = r.device
    yield f"{dev.family.value},site={dev.site},device={dev.device_id} {fields}{extra} {_ns(r)}"


def _event_lines(r: Reading) -> Iterator[str]:
    dev, family = r.device, r.device.family
    tags = f"{EVENTS},site={dev.site},family={family.value},device={dev.device_id}"
    extra = f",seq={r.seq}i" if r.seq is not None else ""
    extra += ",historical=true" if r.historical else ""
    base = _ns(r)
    for index, event in enumerate(r.events):
        attrs = "".join(f"{_key(k)}={_attr_field(family, k, v)}," for k, v in event.attrs.items())
        yield f"{tags},code={_tag(event.code)} {attrs}index={index}i{extra} {base + index}"


def _attr_field(family: Family, name: str, value: MetricValue) -> str:
    spec = event_attr_spec(family, name)
    if spec is not None and spec.type == "integer":
        return f"{value}i"
    return _field(value if isinstance(value, str) else orjson.dumps(value).decode())


def _stored_event(device: DeviceRef, columns: list[str], row: list[Any]) -> StoredEvent:
    values = dict(zip(columns, row, strict=True))
    attrs = {name: _attr_value(device.family, name, v) for name, v in values.items()
             if name not in _NOT_ATTRS and v is not None}
    seq = values.get("seq")
    ns = int(values["time"])
    return StoredEvent(from_epoch_ms(ns // 1_000_000), str(values["code"]), int(values["index"]), attrs,
                       None if seq is None else int(seq), bool(values.get("historical")))


def _attr_value(family: Family, name: str, value: Any) -> MetricValue:
    spec = event_attr_spec(family, name)
    return int(value) if spec is not None and spec.type == "integer" else str(value)


def _ns(r: Reading) -> int:
    return int(r.ts.timestamp() * 1000) * 1_000_000


def _tag(value: str) -> str:
    return value.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def _parse_time(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _number(value: float | bool | str) -> float | bool | str:
    # JSON renders a float field holding 1200.0 as 1200; fields are written as floats.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _field(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value))
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _key(name: str) -> str:
    return name.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def _ident(name: str) -> str:
    return name.replace('"', "")


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
