"""The published AsyncAPI document is current and agrees with the ingest validator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from core.contract import asyncapi_document
from core.domain import Family
from core.errors import ContractError
from core.schema import FAMILY_EVENTS, FAMILY_METRICS, MetricSpec
from ingest.decode import decode
from runtime.contract_cli import render_asyncapi

DOC = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.yaml"
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_docs_asyncapi_is_up_to_date() -> None:
    assert DOC.read_text() == render_asyncapi(), "run: fmon contract asyncapi > docs/asyncapi.yaml"


def valid_value(spec: MetricSpec) -> Any:
    if spec.type == "boolean":
        return True
    if spec.type == "enum":
        return spec.choices[-1]
    return spec.maximum if spec.type == "number" else int(spec.minimum or 0)


def schema_of(family: Family) -> dict[str, Any]:
    return asyncapi_document()["components"]["schemas"][f"reading_{family.value}"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("family", list(Family))
def test_a_full_reading_passes_both_the_document_and_the_decoder(family: Family) -> None:
    body = {"ts": "2026-11-21T07:59:00Z", "seq": 1,
            "metrics": {s.name: valid_value(s) for s in FAMILY_METRICS[family]},
            "events": [{"code": e.code} for e in FAMILY_EVENTS[family]]}
    jsonschema.validate(body, schema_of(family))
    readings = decode(f"fmon/v1/s1/{family.value}/d1/telemetry", orjson.dumps(body), NOW)
    assert isinstance(readings, list)
    assert set(readings[0].metrics) == {s.name for s in FAMILY_METRICS[family]}


@pytest.mark.parametrize("family", list(Family))
def test_what_the_document_refuses_the_decoder_refuses(family: Family) -> None:
    numeric = [s for s in FAMILY_METRICS[family] if s.maximum is not None]
    bad_bodies = [{"metrics": {"no_such_metric": 1}}, {"metrics": {}}, {"metrics": {"x": 1}, "seq": -1}]
    if numeric:
        bad_bodies.append({"metrics": {numeric[0].name: numeric[0].maximum * 2 + 1}})  # type: ignore[operator]
    for body in bad_bodies:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, schema_of(family))
        with pytest.raises(ContractError):
            decode(f"fmon/v1/s1/{family.value}/d1/telemetry", orjson.dumps(body), NOW)


def test_batch_schema_bounds_the_batch() -> None:
    schema = asyncapi_document()["components"]["schemas"]["batch"]
    reading = {"device_id": "e1", "family": "env", "metrics": {"co2_ppm": 500}}
    jsonschema.validate({"readings": [reading]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"readings": [reading] * 1001}, schema)


def test_event_only_readings_and_event_attributes_agree_with_the_decoder() -> None:
    point = {"code": "point_fire", "loop": 1, "address": 23, "zone": "B1-F3", "component_type": 40, "note": "x"}
    good = {"ts": "2026-11-21T07:59:00Z", "events": [point]}
    jsonschema.validate(good, schema_of(Family.FIRE_PANEL))
    assert decode("fmon/v1/s1/fire_panel/fp1/telemetry", orjson.dumps(good), NOW)
    for bad_event in ({**point, "loop": "one"}, {**point, "seq": 3}, {**point, "Bad": 1}, {**point, "x": [1]}):
        body = {"events": [bad_event]}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, schema_of(Family.FIRE_PANEL))
        with pytest.raises(ContractError):
            decode("fmon/v1/s1/fire_panel/fp1/telemetry", orjson.dumps(body), NOW)
