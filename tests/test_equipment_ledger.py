"""The equipment ledger: CSV import (problems by line and field), round trip, plans and planned
work orders, recorded risks, the migration, the CLI; on SQLite and PostgreSQL where the DB matters."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alarms.lifecycle import InvalidRequest
from maintenance import ledger, plans
from maintenance.catalog import EQUIPMENT_TYPES, INTERVALS, SKILLS
from maintenance.plan_templates import BUILTIN_PLANS
from maintenance.risks import latest_risks, record_risks
from runtime.maintenance_cli import maintenance
from storage.state.database import StateDatabase
from storage.state.equipment_models import Equipment, EquipmentDevice, EquipmentRisk, WorkOrder
from storage.state.models import AuditEntry, Base, Site
from tests.equipment_support import LEDGER_CSV, T0, register_demo, seed

HEADER = ",".join(ledger.CSV_COLUMNS)
GOOD = "P-1,demo,pump,1号泵,Pump 1,,,plant,-1,pump-room,2019-03-15,2021-03-14,,in_service,demo/pump/pump-supply-1,,"
MY_TABLES = {"equipment", "equipment_devices", "maintenance_plans", "plan_tasks", "work_orders", "technicians",
             "equipment_risks"}


def problems(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(ledger.LedgerError) as caught:
        ledger.parse_csv(text, "eq.csv")
    return [(p.line, p.field, p.message) for p in caught.value.problems]


def row(**changes: str) -> str:
    cells = dict(zip(ledger.CSV_COLUMNS, GOOD.split(","), strict=True))
    cells.update(changes)
    return ",".join(cells[c] for c in ledger.CSV_COLUMNS)


# --- parsing: every problem named by line and field ----------------------------------------------


@pytest.mark.parametrize(("cells", "field", "words"), [
    ({"installed_on": "2019-13-01"}, "installed_on", "'2019-13-01' is not a date"),
    ({"warranty_until": "soon"}, "warranty_until", "'soon' is not a date"),
    ({"type": "rocket"}, "type", "'rocket' is not an equipment type"),
    ({"status": "broken"}, "status", "'broken' is not an equipment status"),
    ({"floor": "ten"}, "floor", "'ten' is not an integer"),
    ({"code": "P 1"}, "code", "not a valid id"),
    ({"devices": "demo/pump"}, "devices", "not a device reference"),
    ({"devices": "demo/robot/r1"}, "devices", "'robot' is not a device family"),
    ({"devices": "other/pump/p1"}, "devices", "is a device of site other, not of demo"),
    ({"metrics": "co2_ppm"}, "metrics", "'co2_ppm' is not a metric of the linked devices' families"),
    ({"warranty_until": "2018-01-01"}, "warranty_until", "before installed_on 2019-03-15"),
    ({"building": "", "floor": "", "zone": "pump-room"}, "zone", "a zone needs its building"),
    ({"name_zh": "", "name_en": ""}, "name_zh", "give a name"),
])
def test_a_bad_value_is_named_by_line_and_field(cells: dict[str, str], field: str, words: str) -> None:
    text = "\n".join([HEADER, GOOD.replace("P-1", "P-0"), row(**cells)]) + "\n"
    [(line, named, message)] = problems(text)
    assert (line, named) == (3, field)
    assert words in message


def test_all_problems_are_reported_at_once_and_duplicates_name_the_first_line() -> None:
    text = "\n".join([HEADER, GOOD, "", row(installed_on="x"), GOOD, row(code="P-2", type="t")]) + "\n"
    found = problems(text)
    assert [(line, field) for line, field, _ in found] == [(4, "installed_on"), (5, "code"), (6, "type")]
    assert "duplicate equipment P-1 (first on line 2)" in found[1][2]
    with pytest.raises(ledger.LedgerError, match=r"eq\.csv:5: code: duplicate"):
        ledger.parse_csv(text, "eq.csv")


def test_header_problems() -> None:
    assert problems("code,site,colour\n") == [
        (1, "colour", f"unknown column (expected: {', '.join(ledger.CSV_COLUMNS)})"),
        (1, "type", "required column is missing")]
    assert problems("") == [(1, "header", f"empty file: the first line names the columns "
                                          f"({', '.join(ledger.CSV_COLUMNS)})")]


def test_dates_accept_excel_forms_and_lists_split_on_semicolons() -> None:
    [spec] = ledger.parse_csv(f"{HEADER}\n{row(installed_on='2019/3/5', metrics='run_hours; vibration_mm_s')}\n",
                              "eq.csv")
    assert spec.installed_on == date(2019, 3, 5)
    assert spec.metrics == ("run_hours", "vibration_mm_s")
    assert [str(d) for d in spec.devices] == ["demo/pump/pump-supply-1"]


def test_gb18030_files_from_excel_are_read() -> None:
    assert ledger.decode("code,名称\n".encode("gb18030"), "x.csv") == "code,名称\n"
    assert ledger.decode("\ufeffcode\n".encode(), "x.csv") == "code\n"


# --- import against the registry -----------------------------------------------------------------


def test_import_round_trip_and_idempotence(state_db: StateDatabase) -> None:
    register_demo(state_db)
    text = LEDGER_CSV.read_text(encoding="utf-8")
    first = ledger.import_csv(state_db, text, "equipment.csv", T0, actor="zhang")
    assert (first.created, first.updated, first.unchanged) == (20, 0, 0)
    again = ledger.import_csv(state_db, text, "equipment.csv", T0)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 20)
    with state_db.session() as session:
        exported = ledger.export_csv(session)
        lift = session.get(Equipment, "DT-B1-001")
        assert lift is not None and (lift.installed_on, lift.zone_id) == (date(2018, 6, 20), "b1-lift-1")
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "ledger.import")).all()
        assert [(a.actor, a.detail["created"]) for a in audit] == [("zhang", 20), ("cli", 0)]
    assert exported == text  # the example file is in export order
    assert ledger.import_csv(state_db, exported, "export.csv", T0).unchanged == 20


def test_a_changed_row_updates_and_replaces_its_links(state_db: StateDatabase) -> None:
    register_demo(state_db)
    text = f"{HEADER}\n{GOOD}\n"
    ledger.import_csv(state_db, text, "eq.csv", T0)
    changed = text.replace("demo/pump/pump-supply-1", "demo/pump/pump-supply-2").replace("1号泵", "一号泵")
    report = ledger.import_csv(state_db, changed, "eq.csv", T0)
    assert (report.created, report.updated) == (0, 1)
    with state_db.session() as session:
        links = session.scalars(select(EquipmentDevice.device_id)).all()
        assert links == ["pump-supply-2"]
        assert session.get(Equipment, "P-1").name_zh == "一号泵"  # type: ignore[union-attr]


def test_references_must_resolve_in_the_registry(state_db: StateDatabase) -> None:
    register_demo(state_db)
    text = "\n".join([HEADER, row(devices="demo/pump/pump-nine"), row(code="P-2", site="nowhere", devices=""),
                      row(code="P-3", building="b9", zone=""), row(code="P-4", zone="attic"),
                      row(code="P-5", installed_on="never")]) + "\n"
    with pytest.raises(ledger.LedgerError) as caught:
        ledger.import_csv(state_db, text, "eq.csv", T0)
    assert [(p.line, p.field, p.message) for p in caught.value.problems] == [
        (2, "devices", "unknown device demo/pump/pump-nine: not in the device registry"),
        (3, "site", "unknown site 'nowhere': import the device inventory first"),
        (4, "building", "building 'b9' is not registered in site demo"),
        (5, "zone", "zone 'attic' is not registered in building plant"),
        (6, "installed_on", "'never' is not a date (YYYY-MM-DD)"),  # with the registry problems, in one pass
    ]
    with state_db.session() as session:
        assert session.scalars(select(Equipment)).all() == []


def test_a_code_keeps_its_site_and_dry_run_saves_nothing(state_db: StateDatabase) -> None:
    register_demo(state_db)
    dry = ledger.import_csv(state_db, f"{HEADER}\n{GOOD}\n", "eq.csv", T0, dry_run=True)
    assert (dry.created, dry.dry_run) == (1, True)
    with state_db.session() as session:
        assert session.scalars(select(Equipment)).all() == []
        session.add(Equipment(id="P-1", site="demo", type="pump", created_at=T0, updated_at=T0))
        session.add(Site(id="other"))
    moved = f"{HEADER}\n{row(site='other', building='', floor='', zone='', devices='')}\n"
    with pytest.raises(ledger.LedgerError, match="P-1 already belongs to site demo"):
        ledger.import_csv(state_db, moved, "eq.csv", T0)


# --- the migration matches the models ------------------------------------------------------------


def test_migration_0008_matches_the_models(state_db: StateDatabase) -> None:
    with state_db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    mine = [d for d in diff if _table_of(d) in MY_TABLES]
    assert mine == []
    with state_db.engine.connect() as connection:
        names = set(connection.dialect.get_table_names(connection))
    assert names >= MY_TABLES


def _table_of(change: object) -> str | None:
    if isinstance(change, list):  # modify_* changes come as lists of tuples
        change = change[0]
    assert isinstance(change, tuple)
    for part in change[1:]:
        name = getattr(part, "name", None) if not isinstance(part, str) else part
        table = getattr(part, "table", None)
        if table is not None:
            return str(table.name)
        if name in MY_TABLES:
            return str(name)
    return None


# --- plans: templates, periods, generation -------------------------------------------------------


def test_builtin_plans_are_bilingual_cite_a_source_and_use_known_vocabularies() -> None:
    assert set(BUILTIN_PLANS) <= set(EQUIPMENT_TYPES)
    for plan in BUILTIN_PLANS.values():
        for task in plan.tasks:
            assert task.title_zh and task.title_en and task.source and task.checklist, task.key
            assert task.interval in INTERVALS and task.skill in SKILLS, task.key
            assert all(zh and en for zh, en in task.checklist)
    lift = BUILTIN_PLANS["elevator"]
    assert {t.interval for t in lift.tasks} == {"half_monthly", "quarterly", "half_yearly", "annual"}  # TSG T5002
    assert all("TSG T5002" in t.source for t in lift.tasks)
    half_monthly = " ".join(zh for zh, _ in lift.tasks[0].checklist)
    assert "平层准确度" in half_monthly and "7mm" in half_monthly  # reference.md §2.4 items


@pytest.mark.parametrize(("interval", "day", "anchor", "start", "end"), [
    ("half_monthly", date(2026, 11, 15), 1, date(2026, 11, 1), date(2026, 11, 15)),
    ("half_monthly", date(2026, 11, 16), 1, date(2026, 11, 16), date(2026, 11, 30)),
    ("half_monthly", date(2028, 2, 20), 1, date(2028, 2, 16), date(2028, 2, 29)),
    ("monthly", date(2026, 12, 31), 1, date(2026, 12, 1), date(2026, 12, 31)),
    ("quarterly", date(2026, 11, 21), 1, date(2026, 10, 1), date(2026, 12, 31)),
    ("quarterly", date(2026, 11, 21), 3, date(2026, 9, 1), date(2026, 11, 30)),
    ("half_yearly", date(2026, 11, 21), 3, date(2026, 9, 1), date(2027, 2, 28)),
    ("annual", date(2026, 11, 21), 6, date(2026, 6, 1), date(2027, 5, 31)),
    ("annual", date(2026, 5, 31), 6, date(2025, 6, 1), date(2026, 5, 31)),
])
def test_periods(interval: str, day: date, anchor: int, start: date, end: date) -> None:
    assert plans.period_of(interval, day, anchor) == plans.Period(start, end)


def test_periods_cover_a_span_without_gaps() -> None:
    spans = list(plans.periods("half_monthly", date(2026, 11, 21), date(2027, 1, 2)))
    assert [p.start for p in spans] == [date(2026, 11, 16), date(2026, 12, 1), date(2026, 12, 16), date(2027, 1, 1)]
    assert all(b.start == a.end + timedelta(days=1) for a, b in itertools.pairwise(spans))


def _lift_ledger(db: StateDatabase, installed: str = "2019-03-15") -> None:
    register_demo(db)
    line = (f"L-1,demo,elevator,客梯,Lift,,,b1,,b1-lift-1,{installed},,,in_service,demo/elevator/el-b1-1,,\n"
            f"L-2,demo,elevator,停用梯,Retired lift,,,b1,,b1-lift-2,{installed},,,retired,,,\n")
    ledger.import_csv(db, f"{HEADER}\n{line}", "eq.csv", T0)


def planned(db: StateDatabase) -> list[tuple[str, str, date, datetime]]:
    with db.session() as session:
        rows = session.execute(select(WorkOrder, plans.PlanTask.key).join(
            plans.PlanTask, WorkOrder.plan_task_id == plans.PlanTask.id).order_by(WorkOrder.id)).tuples()
        return [(w.equipment_id, key, w.period_start, w.due_at) for w, key in rows]  # type: ignore[misc]


def test_generation_is_idempotent_and_on_the_right_dates(state_db: StateDatabase) -> None:
    _lift_ledger(state_db)  # installed in March: quarters Mar-May, Jun-Aug, Sep-Nov, Dec-Feb
    with state_db.session() as session:
        report = plans.generate(session, T0, 14, actor="planner")  # Nov 21 .. Dec 4, Shanghai
    shanghai_midnight = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # Dec 1 00:00 +08:00
    assert planned(state_db) == [
        ("L-1", "half_monthly", date(2026, 11, 16), shanghai_midnight),
        ("L-1", "quarterly", date(2026, 9, 1), shanghai_midnight),
    ]  # not the retired lift; half-yearly (due Feb) and annual (due Feb) are not due yet
    assert (len(report.created), report.existing) == (2, 0)
    with state_db.session() as session:
        again = plans.generate(session, T0, 14)
    assert (len(again.created), again.existing) == (0, 2)
    with state_db.session() as session:
        session.execute(WorkOrder.__table__.update().values(status="done"))
        later = plans.generate(session, T0 + timedelta(days=10), 15)  # Dec 1 .. Dec 15
    assert len(later.created) == 1
    assert planned(state_db)[-1][:3] == ("L-1", "half_monthly", date(2026, 12, 1))
    with state_db.session() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "plans.generate")).all()
        assert [a.actor for a in audit] == ["planner", "system"]


def test_the_database_refuses_a_second_planned_work_order_for_one_period(state_db: StateDatabase) -> None:
    _lift_ledger(state_db)
    with state_db.session() as session:
        plans.generate(session, T0, 14)
    with state_db.session() as session:
        first = session.scalars(select(WorkOrder)).first()
        assert first is not None
        duplicate = WorkOrder(kind="planned", equipment_id=first.equipment_id, site="demo", title="dup",
                              status="open", priority="normal", skill="elevator", estimate_min=60,
                              plan_task_id=first.plan_task_id, period_start=first.period_start, created_by="x",
                              created_at=T0, updated_at=T0)
    with pytest.raises(IntegrityError), state_db.session() as session:
        session.add(duplicate)


def test_a_cancelled_period_is_not_regenerated_and_next_due_skips_it(state_db: StateDatabase) -> None:
    _lift_ledger(state_db)
    with state_db.session() as session:
        plans.generate(session, T0, 14)
        lift = session.get(Equipment, "L-1")
        assert lift is not None
        assert plans.next_due(session, [lift], T0)["L-1"].period.start == date(2026, 11, 16)
        session.execute(WorkOrder.__table__.update().values(status="cancelled"))
        assert len(plans.generate(session, T0, 14).created) == 0
        following = plans.next_due(session, [lift], T0)["L-1"]
        assert (following.task.key, following.period.start) == ("half_monthly", date(2026, 12, 1))


# --- recorded risks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeRisk:
    asset_id: str
    horizon_days: int
    probability: float
    top_features: tuple[tuple[str, float], ...] = ()
    model_version: str = "test-1"


def test_record_risks_resolves_codes_and_device_keys(state_db: StateDatabase) -> None:
    seed(state_db, with_roster=False)
    with state_db.session() as session:
        report = record_risks(session, [
            FakeRisk("DT-B1-001", 30, 0.2), FakeRisk("demo/pump/pump-supply-1", 30, 0.7, (("vibration_mm_s", 0.5),)),
            FakeRisk("demo/env/env-outdoor", 30, 0.9), FakeRisk("nothing", 7, 0.1)], T0)
    assert (report.recorded, report.unresolved) == (2, ("demo/env/env-outdoor", "nothing"))
    with state_db.session() as session:
        record_risks(session, [FakeRisk("DT-B1-001", 7, 0.4), FakeRisk("DT-B1-001", 30, 0.6)], T0 + timedelta(days=1))
        latest = latest_risks(session)
        assert (latest["DT-B1-001"].probability, latest["DT-B1-001"].horizon_days) == (0.6, 30)
        assert latest["GPS-SB-101"].top_features == [["vibration_mm_s", 0.5]]
        assert session.scalars(select(EquipmentRisk)).all().__len__() == 4


@pytest.mark.parametrize(("probability", "horizon"), [(1.5, 30), (float("nan"), 30), (0.5, 0)])
def test_record_risks_refuses_impossible_values(tmp_path: Path, probability: float, horizon: int) -> None:
    db = StateDatabase(f"sqlite:///{tmp_path / 's.db'}")
    db.upgrade()
    seed(db, with_roster=False)
    with pytest.raises(InvalidRequest, match="DT-B1-001"), db.session() as session:
        record_risks(session, [FakeRisk("DT-B1-001", horizon, probability)], T0)
    db.dispose()


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_import_export_and_errors(tmp_path: Path) -> None:
    env = {"FMON_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}", "FMON_ENVIRONMENT": "demo"}
    db = StateDatabase(env["FMON_DATABASE_URL"])
    db.upgrade()
    register_demo(db)
    db.dispose()
    runner = CliRunner()
    imported = runner.invoke(maintenance, ["ledger", "import", str(LEDGER_CSV)], env=env)
    assert imported.exit_code == 0, imported.output
    assert "20 created, 0 updated, 0 unchanged" in imported.output
    out = tmp_path / "out.csv"
    exported = runner.invoke(maintenance, ["ledger", "export", "--out", str(out)], env=env)
    assert exported.exit_code == 0, exported.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM, for Excel
    assert out.read_text(encoding="utf-8-sig") == LEDGER_CSV.read_text(encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\n{row(installed_on='2019-02-30')}\n", encoding="utf-8")
    failed = runner.invoke(maintenance, ["ledger", "import", str(bad)], env=env)
    assert failed.exit_code == 1
    assert f"{bad}:2: installed_on: '2019-02-30' is not a date (YYYY-MM-DD)" in failed.output
    generated = runner.invoke(maintenance, ["plans", "generate", "--days", "14"], env=env)
    assert generated.exit_code == 0 and "planned work orders created" in generated.output
