"""`fmon simulate …`: simulated devices talking to a broker like real gateways.

- `run`: a site (the demo estate, all six families) against any broker, optionally playing a
  scenario, in real or accelerated time;
- `check`: validate scenario files and verify their expected signatures offline;
- `load`: the load generator bench/ uses (`simulators.load`);
- `backfill`: write days of a site's history into the telemetry store, and its maintenance and
  failure log into the state database as work orders.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
import orjson

from core.broker import BrokerAddress
from core.clock import SystemClock
from core.domain import validate_id
from core.errors import FmonError
from runtime.cli_support import CONFIG_OPTION, settings_from

if TYPE_CHECKING:
    from simulators.gateway import Mode
    from simulators.load import Mode as LoadMode
    from simulators.runner import SiteRunner
    from simulators.scenario import BoundScenario
    from simulators.site import Site



@click.group()
def simulate() -> None:
    """Simulated devices talking to a broker like real gateways."""


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    from simulators.timebase import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _site_id(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return validate_id(value, "site id")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


@simulate.command("run")
@click.option("--broker", required=True, help="mqtt://[user:pass@]host:port or mqtts://…")
@click.option("--site", default="demo", show_default=True, callback=_site_id, help="Site id to publish as.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same devices and values.")
@click.option("--scenario", help="Scenario file, or the name of a shipped one (simulators/scenarios, "
              "e.g. gas-leak-canteen).")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Simulated seconds per real second. Above 1 the run replays the recent past up to now.")
@click.option("--duration", callback=_duration, help="Stop after this much simulated time (90s, 2h, 3d).")
@click.option("--interval", type=click.FloatRange(min=0.1), help="Report interval in seconds for every device "
              "(default: each family's own, core.schema.DEFAULT_REPORT_INTERVAL_S).")
@click.option("--mode", type=click.Choice(["telemetry", "batch"]), default="telemetry", show_default=True,
              help="One message per reading, or gateway batches.")
def simulate_run(broker: str, site: str, seed: int, scenario: str | None, speed: float,
                 duration: timedelta | None, interval: float | None, mode: str) -> None:
    """Publish a simulated site until interrupted (or for --duration), playing --scenario if given.
    Exit status 1 if the broker refuses the login (bad user name or password, not authorised)."""
    from simulators.mqtt_transport import BrokerRefused
    from simulators.runner import RunnerOptions, SiteRunner, mqtt_connect
    from simulators.site import demo_estate

    try:
        address = BrokerAddress.parse(broker)
    except FmonError as exc:
        raise click.BadParameter(str(exc), param_hint="--broker") from None
    estate = demo_estate(site, seed, interval_s=interval)
    bound = _bind_scenario(scenario, estate) if scenario else None
    horizon = duration or (bound.scenario.duration if bound else None)
    options = RunnerOptions(speed=speed, start=_start(speed, horizon), duration=duration, mode=cast("Mode", mode))
    runner = SiteRunner(estate, mqtt_connect(address, site), SystemClock(), steps=bound.steps if bound else (),
                        options=options)
    try:
        connected = runner.start()
    except BrokerRefused as exc:  # a login the broker refuses will not succeed by waiting
        raise click.ClickException(f"{address.url}: {exc}") from None
    if not connected:
        click.echo(f"warning: not every gateway connected to {address.url} yet; buffering until they do", err=True)
    what = f" playing {bound.scenario.name}" if bound else ""
    click.echo(f"simulating site {site} ({len(estate.devices)} devices, gateways {', '.join(estate.gateways)}){what}"
               f" against {address.url} at {speed:g}x; Ctrl-C to stop")
    _wait(runner)
    runner.stop()
    _report(runner.stats())
    if runner.error is not None:
        raise click.ClickException(f"the simulation stopped: {runner.error}")


def _start(speed: float, horizon: timedelta | None) -> datetime | None:
    from simulators.timebase import accelerated_start

    if speed <= 1:
        return None
    if horizon is None:
        raise click.UsageError("--speed above 1 replays the past up to now: give --duration or --scenario "
                               "to say how much")
    return accelerated_start(SystemClock().now(), horizon, speed)


def _bind_scenario(name: str, estate: Site) -> BoundScenario:
    from simulators.scenario import ScenarioError, bind, load_scenario, scenario_path

    try:
        return bind(load_scenario(scenario_path(name)), estate)
    except ScenarioError as exc:
        raise click.UsageError(f"scenario {name}:\n  " + "\n  ".join(exc.problems)) from None


def _wait(runner: SiteRunner) -> None:
    """Until Ctrl-C / SIGTERM, or the run is over (its --duration, or a failure)."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.is_set() and not runner.wait(0.2):
        pass


def _report(stats: dict[str, Any]) -> None:
    for gateway, s in stats.items():
        click.echo(f"{gateway}: {s.live} live, {s.replayed} replayed, {s.dropped} dropped readings; "
                   f"{s.messages} messages, {s.acks} command acks")


@simulate.command("check")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=1, show_default=True)
def simulate_check(files: tuple[Path, ...], seed: int) -> None:
    """Validate scenario files (default: all shipped ones, simulators/scenarios) and check their
    expected signatures offline, at full speed. Exit status 1 if any file is invalid or misses an
    expectation, or if there is no file to check."""
    from simulators.expect import check
    from simulators.offline import play
    from simulators.scenario import SCENARIO_DIR, ScenarioError, bind, load_scenario, shipped_scenarios
    from simulators.site import demo_estate

    paths = list(files) or shipped_scenarios()
    if not paths:  # an install without its package data must not pass as "all scenarios valid"
        raise click.ClickException(f"no scenario files found in {SCENARIO_DIR} (is fmon installed with its "
                                   "package data?); name the files to check")
    failed = 0
    for path in paths:
        try:
            bound = bind(load_scenario(path), demo_estate(seed=seed))
        except ScenarioError as exc:
            failed += 1
            click.echo("\n".join(exc.problems), err=True)
            continue
        run = play(bound, demo_estate(seed=seed))
        misses = check(bound.scenario, run.start, run.published)
        failed += bool(misses)
        status = "ok" if not misses else "FAILED"
        click.echo(f"{status:6} {path}: {len(bound.steps)} steps, {len(bound.scenario.expect)} expectations, "
                   f"{len(run.published)} messages")
        for miss in misses:
            click.echo(f"       {miss}", err=True)
    if failed:
        sys.exit(1)


@simulate.command("load")
@click.option("--broker", required=True, help="mqtt://[user:pass@]host:port or mqtts://…")
@click.option("--devices", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Readings per second, all devices together.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds of publishing.")
@click.option("--mode", type=click.Choice(["json", "batch", "sparkplug"]), default="json", show_default=True,
              help="One JSON message per reading, JSON gateway batches, or Sparkplug B DDATA.")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Readings per gateway batch (batch mode).")
@click.option("--qos", type=click.IntRange(0, 1), default=1, show_default=True)
@click.option("--site", default="load", show_default=True, callback=_site_id)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the result as JSON.")
def simulate_load(broker: str, devices: int, rate: float, duration: float, mode: str, batch_size: int, qos: int,
                  site: str, json_out: Path | None) -> None:
    """Publish synthetic readings at a requested rate and report the rate achieved.

    Exit status 0 if the broker acknowledged everything at 95 % of the requested rate or more,
    1 if not (the report says why).
    """
    from simulators.load import LoadSpec, run_load

    try:
        address = BrokerAddress.parse(broker)
    except FmonError as exc:
        raise click.BadParameter(str(exc), param_hint="--broker") from None
    spec = LoadSpec(devices, rate, duration, cast("LoadMode", mode), batch_size, qos, site)
    try:
        result = run_load(address, spec)
    except (ConnectionError, OSError, FmonError) as exc:  # FmonError: BrokerRefused
        raise click.ClickException(f"load generator: {exc}") from None
    click.echo(result.summary())
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2))
    if not result.reached:
        sys.exit(1)


@simulate.command("backfill")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=90, show_default=True,
              help="How much history to write.")
@click.option("--site", default="demo", show_default=True, callback=_site_id)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--end", "end_text", help="Last moment of the history, ISO-8601 with offset (default: now). "
              "The same --end and --seed write the same points again (the store overwrites them).")
@click.option("--resolution", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds between readings of a device at most (devices that report less often keep "
                   "their own interval).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Export of the maintenance and failure log as CSV "
                   "(default: <data dir>/backfill-<site>-maintenance.csv).")
@click.option("--database", help="State database to record the work orders in (postgresql://…; "
              "default: the settings' state database).")
@CONFIG_OPTION
def simulate_backfill(days: float, site: str, seed: int, end_text: str | None, resolution: float,
                      log_path: Path | None, database: str | None, config_file: Path | None) -> None:
    """Write a simulated site's history, with degradations and failures, into the telemetry store, and
    its maintenance and failure log into the state database (a corrective work order per failure, a
    done planned one per maintenance), where the equipment-health jobs learn from it."""
    from runtime.backfill import BackfillOptions, run_backfill

    settings = settings_from(config_file, **({"database_url": database} if database else {}))
    end = _end_time(end_text)
    options = BackfillOptions(site, seed, days, end, resolution, log_path=log_path)
    total = int(timedelta(days=days).total_seconds())
    with click.progressbar(length=total, label=f"backfilling {days:g} days of {site}", file=sys.stderr,
                           show_pos=False, show_percent=True, show_eta=True) as bar:
        try:
            result = run_backfill(settings, options, bar.update)
        except FmonError as exc:
            raise click.ClickException(str(exc)) from None
    store = settings.influx_url or str(settings.telemetry_sqlite_path)
    click.echo(f"{result.readings} readings ({result.values} values) of {result.devices} devices from "
               f"{result.start.isoformat(timespec='seconds')} to {result.end.isoformat(timespec='seconds')} "
               f"written to {store}")
    click.echo(f"state database {_redacted(settings.state_database_url)}: {result.ledger.summary()}")
    click.echo(f"maintenance and failure log ({result.log_entries} entries) exported to {result.log_path}")


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)




def _end_time(text: str | None) -> datetime:
    if text is None:
        return SystemClock().now().replace(second=0, microsecond=0)
    try:
        end = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 time", param_hint="--end") from None
    if end.tzinfo is None:
        raise click.BadParameter("give the time with its offset, e.g. 2026-03-31T00:00:00+08:00", param_hint="--end")
    return end.astimezone(UTC)


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()

