"""`fmon maintenance ledger|technicians|plans|work-orders|schedule`: the equipment ledger side of
maintenance. Wiring only: the work is in `maintenance/`; registered on the `maintenance` group
at the end of runtime/maintenance_cli.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy import select

from core.clock import SystemClock
from runtime.cli_support import CONFIG_OPTION, state_database

if TYPE_CHECKING:
    from maintenance.schedule import Schedule

ACTOR_OPTION = click.option("--actor", default="cli", show_default=True, help="Who acts, for the audit log.")




def _read(file: Path) -> str:
    from maintenance.ledger import decode

    try:
        return decode(file.read_bytes(), str(file))
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from None


# --- ledger --------------------------------------------------------------------------------------


@click.group()
def ledger() -> None:
    """The equipment ledger (设备台账): import and export CSV (docs/equipment-health.md)."""


@ledger.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate, and report what would change without saving it.")
@ACTOR_OPTION
@CONFIG_OPTION
def ledger_import(file: Path, dry_run: bool, actor: str, config_file: Path | None) -> None:
    """Import FILE (CSV) into the ledger: upsert by equipment code, never delete.

    On invalid input nothing is saved and every problem is listed as FILE:LINE: FIELD: PROBLEM.
    """
    from maintenance.ledger import import_csv

    text = _read(file)
    with state_database(config_file) as db:
        report = import_csv(db, text, str(file), SystemClock().now(), actor=actor, dry_run=dry_run)
    verb = "would import (dry run, nothing saved)" if dry_run else "imported"
    click.echo(f"{verb} {file}: {report.created} created, {report.updated} updated, {report.unchanged} unchanged")


@ledger.command("export")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (UTF-8 with BOM, for Excel/WPS) instead of standard output.")
@click.option("--site", help="Only this site's equipment.")
@CONFIG_OPTION
def ledger_export(out: Path | None, site: str | None, config_file: Path | None) -> None:
    """Export the ledger as CSV, in the format `ledger import` reads."""
    from maintenance.ledger import export_csv

    with state_database(config_file) as db, db.session() as session:
        text = export_csv(session, site)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8-sig")
        click.echo(f"wrote {text.count(chr(10)) - 1} equipment to {out}", err=True)


# --- technicians ---------------------------------------------------------------------------------


@click.group()
def technicians() -> None:
    """The technician roster: skills, daily capacity, shifts (docs/equipment-health.md)."""


@technicians.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@ACTOR_OPTION
@CONFIG_OPTION
def technicians_import(file: Path, actor: str, config_file: Path | None) -> None:
    """Import the roster from FILE (CSV): upsert by id, never delete (set active=false)."""
    from maintenance import roster

    text = _read(file)
    with state_database(config_file) as db, db.session() as session:
        specs = roster.parse_csv(text, str(file))
        changed = roster.apply(session, specs, str(file), SystemClock().now(), actor=actor)
    click.echo(f"imported {file}: {len(specs)} technicians, {changed} created or changed")


@technicians.command("list")
@CONFIG_OPTION
def technicians_list(config_file: Path | None) -> None:
    """List the roster."""
    from maintenance import roster
    from storage.state.equipment_models import Technician

    with state_database(config_file) as db, db.session() as session:
        rows = [roster.view(t) for t in session.scalars(select(Technician).order_by(Technician.id))]
    for row in rows:
        state = "" if row["active"] else " (inactive)"
        click.echo(f"{row['id']:<16} {','.join(row['skills']):<28} {row['capacity_min']:>4} min  "
                   f"{row['shift_start']}-{row['shift_end']}  {row['name']}{state}")


# --- plans ---------------------------------------------------------------------------------------


@click.group()
def plans() -> None:
    """Maintenance plans: the built-in templates, and planned work orders from them."""


@plans.command("list")
@click.option("--type", "equipment_type", help="Only the plan of this equipment type.")
def plans_list(equipment_type: str | None) -> None:
    """Show the built-in plan templates: tasks, intervals, skills, sources."""
    from maintenance.plan_templates import BUILTIN_PLANS

    for kind, plan in BUILTIN_PLANS.items():
        if equipment_type not in (None, kind):
            continue
        click.echo(f"{kind}: {plan.name_zh} / {plan.name_en}")
        for task in plan.tasks:
            flag = " [blackout-sensitive]" if task.blackout_sensitive else ""
            click.echo(f"  {task.interval:<13} {task.skill:<10} {task.duration_min:>4} min  "
                       f"{task.title_zh} / {task.title_en}{flag}")
            click.echo(f"  {'':<13} source: {task.source}")


@plans.command("generate")
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True,
              help="Create the work orders of the periods due within this many days.")
@click.option("--site", help="Only this site's equipment.")
@ACTOR_OPTION
@CONFIG_OPTION
def plans_generate(days: int, site: str | None, actor: str, config_file: Path | None) -> None:
    """Create planned work orders (idempotent: never twice for one task and period)."""
    from maintenance.plans import generate

    with state_database(config_file) as db, db.session() as session:
        report = generate(session, SystemClock().now(), days, actor=actor, site=site)
    click.echo(f"{len(report.created)} planned work orders created, {report.existing} already there "
               f"(periods due {report.first_day} to {report.last_day})")


# --- work orders ---------------------------------------------------------------------------------


@click.group("work-orders")
def work_orders() -> None:
    """Work orders (工单): list them (act on them in the console or the API)."""


@work_orders.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also done and cancelled ones.")
@click.option("--equipment", help="Only this equipment's.")
@CONFIG_OPTION
def work_orders_list(show_all: bool, equipment: str | None, config_file: Path | None) -> None:
    """List work orders, open ones by default, by due time."""
    from maintenance.workorders import OPEN_STATUSES
    from storage.state.equipment_models import WorkOrder

    query = select(WorkOrder).order_by(WorkOrder.due_at.is_(None), WorkOrder.due_at, WorkOrder.id)
    if not show_all:
        query = query.where(WorkOrder.status.in_(OPEN_STATUSES))
    if equipment:
        query = query.where(WorkOrder.equipment_id == equipment)
    with state_database(config_file) as db, db.session() as session:
        for order in session.scalars(query.limit(1000)):
            due = order.due_at.strftime("%Y-%m-%d %H:%M") if order.due_at else "-"
            click.echo(f"#{order.id:<5} {order.kind:<10} {order.status:<11} {order.priority:<6} {due:<16} "
                       f"{order.equipment_id:<12} {order.assignee or '-':<14} {order.title}")


# --- schedule ------------------------------------------------------------------------------------


@click.command("schedule")
@click.option("--days", type=click.IntRange(1, 92), default=14, show_default=True, help="Days to schedule.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Predicted risks at or above this become predictive inspections.")
@click.option("--site", help="Only this site's equipment (and its time zone).")
@click.option("--blackout", "blackouts", multiple=True, metavar="TYPES=HH:MM-HH:MM[,…]",
              help="Replace the default blackout windows (elevator,escalator=07:00-09:00,17:00-19:00); repeatable.")
@click.option("--no-blackout", is_flag=True, help="No blackout windows at all.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@CONFIG_OPTION
def schedule(days: int, threshold: float, site: str | None, blackouts: Sequence[str], no_blackout: bool,
             as_json: bool, config_file: Path | None) -> None:
    """Propose a day-by-day maintenance schedule: due plan tasks, predicted risks and open work
    orders on the technicians' days (capacity, skills, blackout windows). Nothing is saved."""
    from maintenance.schedule import DEFAULT_BLACKOUTS, Options, build_schedule, parse_blackout
    from maintenance.schedule_inputs import load

    try:
        windows = () if no_blackout else tuple(w for spec in blackouts for w in parse_blackout(spec)) or \
            DEFAULT_BLACKOUTS
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--blackout") from None
    now = SystemClock().now()
    with state_database(config_file) as db, db.session() as session:
        inputs = load(session, now, days=days, threshold=threshold, site=site)
    result = build_schedule(inputs.jobs, inputs.crews, now, Options(days, windows, inputs.tz))
    if as_json:
        json.dump(result.as_json(), sys.stdout, ensure_ascii=False, indent=2)
        click.echo()
        return
    for line in schedule_lines(result):
        click.echo(line)


def schedule_lines(result: Schedule) -> Iterator[str]:
    """The schedule as a table per day, then the unschedulable jobs."""
    yield f"maintenance schedule {result.first_day} to {result.last_day} ({result.tz})"
    for offset in range(result.days):
        day = result.first_day + timedelta(days=offset)
        bookings = result.on(day)
        yield ""
        yield f"{day} {day:%a}: {len(bookings)} job{'s' if len(bookings) != 1 else ''}"
        for b in bookings:
            late = " LATE" if b.late else ""
            yield (f"  {b.start:%H:%M}-{b.end:%H:%M}  {b.technician:<14} {b.job.kind:<10} {b.job.equipment_id:<12} "
                   f"{b.job.title_zh} / {b.job.title_en}{late}")
            yield f"  {'':<11}  why: {b.reason_en} | {b.reason_zh}"
    if result.unscheduled:
        yield ""
        yield f"unschedulable ({len(result.unscheduled)}):"
        for u in result.unscheduled:
            yield f"  {u.job.kind:<10} {u.job.equipment_id:<12} {u.job.title_zh} / {u.job.title_en}"
            yield f"  {'':<10} why: {u.reason_en} | {u.reason_zh}"


COMMANDS = (ledger, technicians, plans, work_orders, schedule)
