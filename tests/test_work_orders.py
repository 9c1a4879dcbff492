"""Work orders: the lifecycle and its refused transitions, audit, maintenance mode suppressing the
equipment's alarms, and the equipment and work-order API with its roles and 4xx answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alarms.lifecycle import InvalidRequest
from api.app import create_app
from core.clock import FakeClock
from core.domain import Role
from core.errors import NotFound
from maintenance import plans, workorders
from maintenance.risks import record_risks
from maintenance.workorders import NewWorkOrder, Part, WorkOrderRefused
from storage.state.database import StateDatabase
from storage.state.equipment_models import EquipmentDevice, EquipmentRisk
from storage.state.models import Alarm, AuditEntry, Maintenance
from tests.equipment_support import LEDGER_CSV, T0, raise_vibration, seed
from tests.harness.api import login, services_with_users


def create(db: StateDatabase, **fields: Any) -> int:
    with db.session() as session:
        order = workorders.create(session, NewWorkOrder(**{"equipment_id": "GPS-SB-101", "title": "泵异响 / noisy pump",
                                                           **fields}), "op1", T0)
        return order.id


def act(db: StateDatabase, action: str, order_id: int, *args: Any, **kwargs: Any) -> workorders.Outcome:
    with db.session() as session:
        outcome: workorders.Outcome = getattr(workorders, action)(session, order_id, *args, **kwargs)
        session.flush()
        return outcome


def status_of(db: StateDatabase, order_id: int) -> str:
    with db.session() as session:
        return workorders.get(session, order_id).status


def history(db: StateDatabase, order_id: int) -> list[tuple[str, str]]:
    with db.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "work_order",
                                                        AuditEntry.entity_id == str(order_id)).order_by(AuditEntry.id))
        return [(a.action, a.actor) for a in rows]


# --- lifecycle -----------------------------------------------------------------------------------


def test_lifecycle_with_every_action_audited(state_db: StateDatabase) -> None:
    seed(state_db)
    order_id = create(state_db)
    assert status_of(state_db, order_id) == "open"
    act(state_db, "assign", order_id, "plumber", "eng1", T0)
    act(state_db, "start", order_id, "plumber", T0 + timedelta(minutes=5))
    act(state_db, "hold", order_id, "waiting for a seal kit", "plumber", T0 + timedelta(minutes=30))
    assert status_of(state_db, order_id) == "on_hold"
    act(state_db, "start", order_id, "plumber", T0 + timedelta(days=1))
    done = act(state_db, "complete", order_id, "plumber", T0 + timedelta(days=1, hours=2), minutes_spent=95,
               parts=[Part("机械密封", 1, "套", "MS-32")], notes="replaced the seal")
    view = workorders.view(done.order)
    assert (view["status"], view["minutes_spent"], view["notes"]) == ("done", 95, "replaced the seal")
    assert view["parts"] == [{"name": "机械密封", "qty": 1, "unit": "套", "code": "MS-32"}]
    assert (view["started_at"], view["completed_at"]) == ("2026-11-21T00:05:00Z", "2026-11-22T02:00:00Z")
    assert history(state_db, order_id) == [
        ("work_order.create", "op1"), ("work_order.assign", "eng1"), ("work_order.start", "plumber"),
        ("work_order.hold", "plumber"), ("work_order.resume", "plumber"), ("work_order.complete", "plumber")]


@pytest.mark.parametrize(("steps", "action", "args", "error", "message"), [
    ([], "complete", ("x", T0), WorkOrderRefused,
     "cannot complete work order {id}: it is open (complete needs in_progress)"),
    ([], "start", ("x", T0), WorkOrderRefused,
     "cannot start work order {id}: it is open (start needs assigned or on_hold)"),
    ([("assign", ("plumber", "e", T0))], "hold", ("", "x", T0), InvalidRequest, "reason: a reason is required"),
    ([("cancel", ("duplicate", "e", T0))], "assign", ("plumber", "x", T0), WorkOrderRefused,
     "cannot assign work order {id}: it is cancelled (assign needs open or assigned or on_hold)"),
    ([("cancel", ("duplicate", "e", T0))], "cancel", ("again", "x", T0), WorkOrderRefused,
     "cannot cancel work order {id}: it is cancelled"),
])
def test_refused_transitions_say_why(tmp_path: Path, steps: list[tuple[str, tuple[Any, ...]]], action: str,
                                     args: tuple[Any, ...], error: type[Exception], message: str) -> None:
    db = StateDatabase(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade()
    seed(db)
    order_id = create(db)
    for step, step_args in steps:
        act(db, step, order_id, *step_args)
    kwargs = {"minutes_spent": 1} if action == "complete" else {}
    with pytest.raises(error) as caught:
        act(db, action, order_id, *args, **kwargs)
    assert message.format(id=order_id) in str(caught.value)
    assert status_of(db, order_id) == ("open" if not steps else "assigned" if steps[0][0] == "assign" else "cancelled")
    db.dispose()


def test_a_done_order_refuses_everything_and_a_stale_version_is_refused(state_db: StateDatabase) -> None:
    seed(state_db)
    order_id = create(state_db, assignee="plumber")
    with state_db.session() as session:
        seen = workorders.get(session, order_id).version
    act(state_db, "start", order_id, "plumber", T0)
    with pytest.raises(WorkOrderRefused, match=f"work order {order_id} changed"):
        act(state_db, "hold", order_id, "parts", "plumber", T0, version=seen)
    act(state_db, "complete", order_id, "plumber", T0, minutes_spent=10)
    for action, args in (("assign", ("plumber", "e", T0)), ("start", ("e", T0)), ("hold", ("r", "e", T0)),
                         ("cancel", ("r", "e", T0))):
        with pytest.raises(WorkOrderRefused, match="it is done"):
            act(state_db, action, order_id, *args)
    with pytest.raises(NotFound, match="no work order 999"):
        act(state_db, "start", 999, "e", T0)


@pytest.mark.parametrize(("fields", "message"), [
    ({"equipment_id": "NOPE"}, "equipment_id: no equipment 'NOPE' in the ledger"),
    ({"kind": "planned"}, "planned ones are generated from maintenance plans"),
    ({"assignee": "nobody"}, "assignee: 'nobody' is not an active technician of the roster"),
    ({"assignee": "lift.a"}, "assignee: lift.a lacks skill 'plumbing' (has elevator)"),
    ({"title": " "}, "title: a title is required"),
    ({"priority": "asap"}, "priority: 'asap' is not one of urgent, high, normal, low"),
    ({"estimate_min": 2}, "estimate_min must be within 5..1440 minutes"),
    ({"skill": "magic"}, "skill: 'magic' is not one of elevator, electrical"),
    ({"risk_id": 12345, "kind": "predictive"}, "risk_id: no prediction 12345 for equipment GPS-SB-101"),
])
def test_bad_requests_name_the_field(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    db = StateDatabase(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade()
    seed(db)
    with pytest.raises(InvalidRequest) as caught:
        create(db, **fields)
    assert message in str(caught.value)
    db.dispose()


def test_predictive_order_from_a_risk_gets_title_and_priority(state_db: StateDatabase) -> None:
    seed(state_db)
    with state_db.session() as session:
        record_risks(session, [_Risk("GPS-SB-101", 30, 0.85)], T0)
        risk_id = session.scalars(select(EquipmentRisk.id)).one()
    order_id = create(state_db, kind="predictive", title="", risk_id=risk_id)
    with state_db.session() as session:
        order = workorders.get(session, order_id)
        assert (order.priority, order.skill, order.estimate_min) == ("high", "plumbing", 90)
        assert "85%" in order.title and "30" in order.title


# --- maintenance mode ----------------------------------------------------------------------------


def _alarms(db: StateDatabase) -> dict[str, Alarm]:
    with db.session() as session:
        return {a.device_id: a for a in session.scalars(select(Alarm))}


@pytest.mark.parametrize("finish", ["complete", "cancel"])
def test_maintenance_mode_suppresses_the_equipment_alarms_until_the_order_closes(state_db: StateDatabase,
                                                                                 finish: str) -> None:
    seed(state_db)
    clock = FakeClock(T0)
    order_id = create(state_db, maintenance_mode=True, assignee="plumber")
    started = act(state_db, "start", order_id, "plumber", T0, maintenance_hours=4)
    window_id = started.order.maintenance_id
    assert window_id is not None
    with state_db.session() as session:
        window = session.get(Maintenance, window_id)
        assert window is not None
        assert (window.target_kind, window.target, window.until) == ("equipment", "GPS-SB-101", T0 + timedelta(hours=4))
    clock.advance(600)
    raise_vibration(state_db, clock, "pump-supply-1")  # linked to GPS-SB-101 in the ledger
    raise_vibration(state_db, clock, "pump-supply-2")  # another pump: not covered
    assert _alarms(state_db)["pump-supply-1"].suppressed_by == f"maintenance:{window_id}"
    assert _alarms(state_db)["pump-supply-2"].suppressed_by is None
    if finish == "complete":
        closed = act(state_db, "complete", order_id, "plumber", clock.now(), minutes_spent=40)
    else:
        closed = act(state_db, "cancel", order_id, "wrong pump", "plumber", clock.now())
    suppressed = _alarms(state_db)["pump-supply-1"]
    assert closed.released == (suppressed.id,)
    assert (suppressed.suppressed_by, suppressed.state) == (None, "unack")  # shown again: still vibrating
    with state_db.session() as session:
        assert session.get(Maintenance, window_id).ended_at == clock.now()  # type: ignore[union-attr]


def test_devices_named_by_the_inventory_are_covered_too(state_db: StateDatabase) -> None:
    """NT-B1-301 lists fan-b1-garage in the ledger; the inventory also names its equipment_id.
    XF-SB-101 is linked only through the inventory (drop its ledger link to prove it)."""
    seed(state_db)
    with state_db.session() as session:
        session.execute(EquipmentDevice.__table__.delete().where(
            EquipmentDevice.equipment_id == "XF-SB-101"))
    clock = FakeClock(T0)
    with state_db.session() as session:
        order = workorders.create(session, NewWorkOrder("XF-SB-101", title="seal", assignee="fire.eng",
                                                        maintenance_mode=True), "eng1", T0)
        workorders.start(session, order.id, "fire.eng", T0)
    clock.advance(60)
    raise_vibration(state_db, clock, "pump-fire-1")
    assert (_alarms(state_db)["pump-fire-1"].suppressed_by or "").startswith("maintenance:")


def test_without_maintenance_mode_nothing_is_suppressed_and_a_resume_reopens_a_lapsed_window(
        state_db: StateDatabase) -> None:
    seed(state_db)
    clock = FakeClock(T0)
    plain = create(state_db, assignee="plumber")
    assert act(state_db, "start", plain, "plumber", T0).order.maintenance_id is None
    raise_vibration(state_db, clock, "pump-supply-1")
    assert _alarms(state_db)["pump-supply-1"].suppressed_by is None
    flagged = create(state_db, equipment_id="GPS-SB-201", assignee="plumber", maintenance_mode=True)
    first = act(state_db, "start", flagged, "plumber", T0, maintenance_hours=1).order.maintenance_id
    act(state_db, "hold", flagged, "parts", "plumber", T0 + timedelta(minutes=10))
    second = act(state_db, "start", flagged, "plumber", T0 + timedelta(minutes=20)).order.maintenance_id
    assert second == first  # still running: kept
    act(state_db, "hold", flagged, "parts", "plumber", T0 + timedelta(minutes=30))
    third = act(state_db, "start", flagged, "plumber", T0 + timedelta(hours=2)).order.maintenance_id
    assert third is not None and third != first  # the first ran out: a new window


# --- API -----------------------------------------------------------------------------------------


class _Risk:
    def __init__(self, asset_id: str, horizon_days: int, probability: float) -> None:
        self.asset_id, self.horizon_days, self.probability = asset_id, horizon_days, probability
        self.top_features: tuple[tuple[str, float], ...] = (("vibration_mm_s", 0.3),)
        self.model_version = "test"


@pytest.fixture
def api(state_db: StateDatabase) -> Iterator[tuple[TestClient, dict[Role, dict[str, str]]]]:
    seed(state_db)
    services = services_with_users(state_db, FakeClock(T0))
    with TestClient(create_app(services)) as client:
        yield client, {role: login(client, role.value) for role in Role}


def test_api_equipment_list_detail_and_health(api: tuple[TestClient, dict[Role, dict[str, str]]],
                                              state_db: StateDatabase) -> None:
    client, headers = api
    with state_db.session() as session:
        record_risks(session, [_Risk("demo/elevator/el-b1-1", 30, 0.42)], T0)
    create(state_db, equipment_id="DT-B1-001", title="门机异响 / door noise")
    body = client.get("/api/v1/equipment?type=elevator&building=b1", headers=headers[Role.VIEWER]).json()
    assert [e["id"] for e in body["items"]] == ["DT-B1-001", "DT-B1-002"] and body["total"] == 2
    lift = body["items"][0]
    assert lift["devices"] == ["demo/elevator/el-b1-1"]
    assert lift["health"]["risk"]["probability"] == 0.42
    assert lift["health"]["open_work_orders"] == 1
    assert lift["health"]["next_task"]["due"] == "2026-11-30"  # half-monthly period Nov 16-30
    assert body["items"][1]["health"]["risk"] is None
    detail = client.get("/api/v1/equipment/DT-B1-001", headers=headers[Role.VIEWER]).json()
    assert [w["title"] for w in detail["work_orders"]] == ["门机异响 / door noise"]
    assert client.get("/api/v1/equipment/NOPE", headers=headers[Role.VIEWER]).status_code == 404
    exported = client.get("/api/v1/equipment/export", headers=headers[Role.VIEWER])
    assert exported.text == LEDGER_CSV.read_text(encoding="utf-8")


def test_api_import_needs_engineer_and_names_bad_lines(api: tuple[TestClient, dict[Role, dict[str, str]]]) -> None:
    client, headers = api
    csv_headers = {"Content-Type": "text/csv"}
    text = LEDGER_CSV.read_text(encoding="utf-8")
    assert client.post("/api/v1/equipment/import", content=text,
                       headers={**headers[Role.OPERATOR], **csv_headers}).status_code == 403
    ok = client.post("/api/v1/equipment/import", content=text, headers={**headers[Role.ENGINEER], **csv_headers})
    assert ok.status_code == 200 and ok.json()["unchanged"] == 20
    bad = text.replace("2018-06-20,2020-06-19", "2018-06-20,not-a-date", 1)
    refused = client.post("/api/v1/equipment/import", content=bad, headers={**headers[Role.ENGINEER], **csv_headers})
    assert refused.status_code == 422
    assert refused.json()["detail"]["problems"] == [
        {"line": 2, "field": "warranty_until", "message": "'not-a-date' is not a date (YYYY-MM-DD)"}]
    for nothing in (b"", b" \n"):
        empty = client.post("/api/v1/equipment/import", content=nothing, headers={**headers[Role.ENGINEER],
                                                                                 **csv_headers})
        assert empty.status_code == 422 and "body" in str(empty.json()["detail"])


def test_api_work_order_lifecycle_roles_and_errors(api: tuple[TestClient, dict[Role, dict[str, str]]]) -> None:
    client, headers = api
    viewer, operator, engineer = headers[Role.VIEWER], headers[Role.OPERATOR], headers[Role.ENGINEER]
    body = {"equipment_id": "GPS-SB-101", "title": "泵漏水 / pump leaking", "priority": "high"}
    assert client.post("/api/v1/work-orders", json=body, headers=viewer).status_code == 403
    created = client.post("/api/v1/work-orders", json=body, headers=operator)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    predictive = client.post("/api/v1/work-orders", json={**body, "kind": "predictive"}, headers=operator)
    assert predictive.status_code == 403 and "engineer" in predictive.json()["detail"]
    base = f"/api/v1/work-orders/{order_id}"
    assert client.post(f"{base}/assign", json={"assignee": "plumber"}, headers=operator).status_code == 403
    assert client.post(f"{base}/complete", json={"minutes_spent": 3}, headers=engineer).status_code == 409
    assert client.post(f"{base}/assign", json={"assignee": "plumber"}, headers=engineer).status_code == 200
    started = client.post(f"{base}/start", headers=engineer)
    assert started.status_code == 200 and started.json()["status"] == "in_progress"
    missing = client.post(f"{base}/complete", json={"parts": []}, headers=engineer)
    assert missing.status_code == 422 and "minutes_spent" in str(missing.json()["detail"])
    bad_part = client.post(f"{base}/complete", json={"minutes_spent": 5, "parts": [{"name": "x", "qty": 0}]},
                           headers=engineer)
    assert bad_part.status_code == 422 and "qty" in str(bad_part.json()["detail"])
    done = client.post(f"{base}/complete", json={"minutes_spent": 50, "parts": [{"name": "密封圈", "qty": 2}],
                                                 "notes": "ok"}, headers=engineer)
    assert done.status_code == 200 and done.json()["status"] == "done"
    again = client.post(f"{base}/cancel", json={"reason": "x"}, headers=engineer)
    assert again.status_code == 409 and "it is done" in again.json()["detail"]
    detail = client.get(base, headers=viewer).json()
    assert [h["action"] for h in detail["history"]] == [
        "work_order.create", "work_order.assign", "work_order.start", "work_order.complete"]
    assert detail["history"][0]["actor"] == "operator"
    assert client.post("/api/v1/work-orders/999/start", headers=engineer).status_code == 404
    unknown = client.post("/api/v1/work-orders", json={**body, "equipment_id": "NOPE"}, headers=operator)
    assert unknown.status_code == 422 and "NOPE" in unknown.json()["detail"]
    extra = client.post("/api/v1/work-orders", json={**body, "colour": "red"}, headers=operator)
    assert extra.status_code == 422 and "colour" in str(extra.json()["detail"])
    listed = client.get("/api/v1/work-orders?status=done&equipment=GPS-SB-101", headers=viewer).json()
    assert [w["id"] for w in listed["items"]] == [order_id]
    assert client.get("/api/v1/work-orders?status=sleeping", headers=viewer).status_code == 422


def test_api_plans_generate_and_read_routes(api: tuple[TestClient, dict[Role, dict[str, str]]],
                                            state_db: StateDatabase) -> None:
    client, headers = api
    assert client.post("/api/v1/maintenance/plans/generate", json={"days": 14},
                       headers=headers[Role.OPERATOR]).status_code == 403
    first = client.post("/api/v1/maintenance/plans/generate", json={"days": 14}, headers=headers[Role.ENGINEER])
    assert first.status_code == 200 and first.json()["created"] > 0
    again = client.post("/api/v1/maintenance/plans/generate", json={"days": 14}, headers=headers[Role.ENGINEER])
    assert (again.json()["created"], again.json()["existing"]) == (0, first.json()["created"])
    assert client.post("/api/v1/maintenance/plans/generate", json={"days": 0},
                       headers=headers[Role.ENGINEER]).status_code == 422
    with state_db.session() as session:
        assert plans.install_builtin(session, T0) == 0  # already installed, unchanged
    templates = client.get("/api/v1/maintenance/plans", headers=headers[Role.VIEWER]).json()["items"]
    assert "TSG T5002" in next(p for p in templates if p["equipment_type"] == "elevator")["tasks"][0]["source"]
    techs = client.get("/api/v1/technicians", headers=headers[Role.VIEWER]).json()["items"]
    assert [t["id"] for t in techs] == ["fire.eng", "lift.a", "plumber"]
