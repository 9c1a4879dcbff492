"""`fmon rules …`: check rule files, run rule unit tests, backtest rules on stored history.

Wiring only: the work is in `rules.testing` and `rules.backtest` (docs/rules.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from core.errors import FmonError
from core.settings import Settings
from rules.backtest import BacktestReport, backtest
from rules.engine import KindOf, ZoneOf
from rules.loader import LIBRARY, load_rules
from rules.model import ChangeKind, Rule
from rules.testing import check_rules, run_tests
from runtime.cli_support import CONFIG_OPTION, settings_from

PATHS = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


@click.group()
def rules() -> None:
    """Rules as code: check rule files, run rule tests, backtest on stored history (docs/rules.md)."""


@rules.command("check")
@PATHS
def rules_check(paths: tuple[Path, ...]) -> None:
    """Validate rule files (default: the shipped library); print every problem as FILE:LINE: FIELD: PROBLEM.

    Besides the schema, flags metrics and event codes the device family does not have, conditions
    that do not fit the metric's type, and message templates that do not render as written.
    """
    report = check_rules(paths or (LIBRARY,))
    for problem in report.problems:
        click.echo(problem, err=True)
    if not report.ok:
        raise click.ClickException(f"{len(report.problems)} problem(s) in {len(report.files)} file(s)")
    if not report.files:
        raise click.ClickException("no rule files (*.yaml, *.yml) found")
    click.echo(f"ok: {len(report.rules)} rules in {len(report.files)} file(s)")
    for line in report.summary():
        click.echo(line)


@rules.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-q", "--quiet", is_flag=True, help="Print only failures and the summary.")
def rules_test(paths: tuple[Path, ...], quiet: bool) -> None:
    """Run rule unit tests (YAML files or directories of them); exit 1 if any fails."""
    results = run_tests(paths)
    if not results:
        raise click.ClickException("no rule test files (*.yaml, *.yml) found")
    for result in results:
        for line in result.report():
            if not (quiet and line.endswith(": ok")):
                click.echo(line)
    cases = [case for result in results for case in result.cases]
    failed = sum(not case.passed for case in cases) + sum(bool(r.problems) for r in results)
    click.echo(f"{len(cases) - sum(not c.passed for c in cases)} passed, {failed} failed")
    if failed:
        click.get_current_context().exit(1)


@rules.command("backtest")
@click.option("--from", "start", required=True,
              help="Start of the replay, ISO-8601 with offset (2026-11-20T00:00+08:00).")
@click.option("--to", "end", required=True, help="End of the replay (exclusive), ISO-8601 with offset.")
@click.option("--rules", "rule_paths", multiple=True, type=click.Path(path_type=Path),
              help="Rule files or directories (repeatable); default: the shipped library.")
@click.option("--site", help="Only this site's readings.")
@click.option("--tick", "tick_s", type=click.FloatRange(min=0.001),
              help="Seconds of data time between engine ticks [default: the rule_tick_seconds setting].")
@click.option("--warmup", default="0", show_default=True,
              help="Replay this much history before --from without reporting it (e.g. 1h, for rate/anomaly rules).")
@CONFIG_OPTION
def rules_backtest(start: str, end: str, rule_paths: tuple[Path, ...], site: str | None, tick_s: float | None,
                   warmup: str, config_file: Path | None) -> None:
    """Replay stored telemetry through the rules and report which alarms would have fired.

    Reads the telemetry store fmon is configured with; writes nothing (no alarms, no rule state).
    """
    t1, t2 = _when(start, "--from"), _when(end, "--to")
    if t2 <= t1:
        raise click.BadParameter("must be after --from", param_hint="--to")
    settings = settings_from(config_file)
    try:
        rule_list = load_rules(rule_paths or (LIBRARY,))
        tick = timedelta(seconds=tick_s if tick_s is not None else settings.rule_tick_seconds)
        report = _replay(settings, rule_list, t1, t2, site, tick, _duration(warmup))
    except (FmonError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in report_lines(report):
        click.echo(line)


def _replay(settings: Settings, rule_list: list[Rule], start: datetime, end: datetime, site: str | None,
            tick: timedelta, warmup: timedelta) -> BacktestReport:
    from runtime.stores import open_telemetry_store

    zone_of, kind_of = registry_lookups(settings)
    store = open_telemetry_store(settings)
    try:
        return backtest(store, rule_list, start, end, site=site, tick_every=tick,
                        warmup=warmup, zone_of=zone_of, kind_of=kind_of)
    finally:
        store.close()


def registry_lookups(settings: Settings) -> tuple[ZoneOf, KindOf]:
    """Zones and kinds of devices from the device registry, when there is a state database to
    read them from (read only); otherwise none, and zone rules and rules for some device kinds
    (`device_kinds`) cannot fire: said on stderr."""
    from ingest.registry import DeviceDirectory
    from storage.state.database import StateDatabase
    from storage.state.registry import RegistryStore

    nothing: tuple[ZoneOf, KindOf] = (lambda _d: None, lambda _d: None)
    if settings.database_url is None and not (settings.data_dir / "state.db").exists():
        click.echo(f"note: no state database in {settings.data_dir}, so no zones or device kinds: "
                   "zone rules and device_kinds rules cannot fire", err=True)
        return nothing
    db = StateDatabase(settings.state_database_url)
    try:
        directory = DeviceDirectory(RegistryStore(db))
    except Exception as exc:  # an old or foreign database: go on without the registry
        click.echo(f"note: no zones or device kinds from the device registry ({exc})", err=True)
        return nothing
    finally:
        db.dispose()
    return directory.zone_of, directory.kind_of


def report_lines(report: BacktestReport) -> Iterator[str]:
    """The changes as a table, then the counts per rule and what could not be replayed."""
    yield (f"replayed {report.readings} readings of {report.devices} devices, "
           f"{_iso(report.start)} to {_iso(report.end)}")
    for rule_id, source in report.active_at_start:
        yield f"already active at the start (raised during the warm-up): {rule_id} {source}"
    if report.changes:
        rows = [(_iso(c.at), c.rule.id, c.source.key, str(int(c.grade)), c.kind.value) for c in report.changes]
        yield from _table(("time", "rule", "source", "grade", "kind"), rows)
        yield ""
        counts = [(rule_id, *(str(n[k]) for k in ChangeKind)) for rule_id, n in report.counts().items()]
        yield from _table(("rule", *(f"{k.value}s" for k in ChangeKind)), counts)
    else:
        yield "no alarm would have fired"
    if report.not_replayable:
        ids = ", ".join(r.id for r in report.not_replayable)
        yield f"not replayed (events and presence are not stored): {ids}"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Iterator[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def _when(text: str, hint: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 time", param_hint=hint) from None
    if value.tzinfo is None:
        raise click.BadParameter(f"{text!r} needs an offset (Z or +08:00)", param_hint=hint)
    return value.astimezone(UTC)


def _duration(text: str) -> timedelta:
    from rules.testing import parse_offset

    try:
        value = parse_offset(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--warmup") from None
    assert isinstance(value, timedelta)
    return value


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")



