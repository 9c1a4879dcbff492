"""The `fmon` command. Each subcommand builds settings at start-up and wires one process."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import click
from prometheus_client import start_http_server

from core.clock import SystemClock
from core.domain import Role
from core.errors import Conflict, FmonError
from runtime.cli_support import (
    CONFIG_OPTION,
    describe_connections,
    open_state_database,
    settings_from,
    state_database,
)
from runtime.contract_cli import contract
from runtime.inventory_cli import inventory
from runtime.maintenance_cli import maintenance
from runtime.playbooks_cli import playbooks
from runtime.rules_cli import rules
from runtime.simulate_cli import simulate, wait_for_signal

log = logging.getLogger("fmon")

@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """fmon: telemetry, alarms and emergency playbooks for property management."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@click.option("--port", type=int, default=8000, show_default=True, help="HTTP port of the API and console.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--password", help="Password of the demo users admin, operator, engineer (random if omitted).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("fmon-data"),
              show_default=True, help="Where the embedded stores keep their files.")
@click.option("--broker", help="Use this MQTT broker (mqtt://host:port) instead of the embedded one.")
@click.option("--broker-port", type=int, default=1883, show_default=True, help="Port of the embedded broker.")
@click.option("--influx", help="Use InfluxDB (http://host:port/db) instead of SQLite telemetry.")
@click.option("--database", help="Use this state database (postgresql://…) instead of SQLite.")
@click.option("--sim-interval", type=float, default=5.0, show_default=True, help="Seconds between simulated readings.")
@CONFIG_OPTION
def demo(port: int, host: str, password: str | None, data_dir: Path, broker: str | None, broker_port: int,
         influx: str | None, database: str | None, sim_interval: float, config_file: Path | None) -> None:
    """Run everything in one process: broker, stores, simulators, API and web console."""
    from runtime.demo import DemoOptions, run_demo

    if password is not None and len(password) < 8:
        raise click.BadParameter("needs at least 8 characters", param_hint="--password")
    _check_port_free(host=host, port=port, what="--port")
    if broker is None:
        _check_port_free(host="127.0.0.1", port=broker_port, what="--broker-port")
    settings = settings_from(
        config_file, environment="demo", api_port=port, api_host=host, data_dir=data_dir,
        broker_url=broker or f"mqtt://127.0.0.1:{broker_port}", influx_url=influx, database_url=database,
    )
    options = DemoOptions(settings, password, None if broker else broker_port, sim_interval)
    _run(run_demo(options))


@main.command()
@CONFIG_OPTION
def ingest(config_file: Path | None) -> None:
    """Run an ingest worker: MQTT → rules → alarms, and telemetry to the store."""
    from runtime.ingest_process import build_ingest

    settings = settings_from(config_file)
    log.info("fmon ingest: %s", describe_connections(settings))
    with open_state_database(settings) as db:  # unreachable: one line and exit code 1, no traceback
        process = build_ingest(settings, db, SystemClock())
        if settings.metrics_port is not None:
            start_http_server(settings.metrics_port, registry=process.metrics)
        process.start()
        wait_for_signal()
        process.stop()


@main.command()
@CONFIG_OPTION
def api(config_file: Path | None) -> None:
    """Serve the HTTP API, the WebSocket stream and the web console."""
    from runtime.api_process import build_services, serve_api

    settings = settings_from(config_file)
    log.info("fmon api: %s", describe_connections(settings, telemetry=False))  # the API reads no telemetry
    with open_state_database(settings) as db:  # unreachable: one line and exit code 1, no traceback

        async def serve() -> None:
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await serve_api(settings, build_services(settings, db, SystemClock(), telemetry=True), stop)

        _run(serve())


@main.group()
def db() -> None:
    """State database administration."""


@db.command("upgrade")
@CONFIG_OPTION
def db_upgrade(config_file: Path | None) -> None:
    """Create or migrate the state database to the current schema."""
    with state_database(config_file):
        click.echo("state database is up to date")


@main.group()
def users() -> None:
    """User accounts."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.VIEWER.value, show_default=True)
@click.option("--password", help="The password (shell history and `ps` show it: in scripts use --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--replace", is_flag=True, help="Reset the password and role of an existing user.")
@CONFIG_OPTION
def users_add(username: str, role: str, password: str | None, password_stdin: bool, replace: bool,
              config_file: Path | None) -> None:
    """Add a user (passwords are stored as argon2 hashes). Without --password or --password-stdin,
    the password is prompted for, twice."""
    from api.security import hash_password
    from storage.state.users import USERNAME, UserStore

    if USERNAME.fullmatch(username) is None:
        raise click.BadParameter("1-64 characters of A-Z a-z 0-9 _ . @ -", param_hint="USERNAME")
    try:
        hashed = hash_password(_new_password(password, password_stdin))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--password") from None
    with state_database(config_file) as database:
        try:
            UserStore(database).add(username, hashed, Role(role), SystemClock().now(), replace=replace)
        except Conflict as exc:
            raise click.ClickException(f"{exc}; add --replace to reset its password and role") from None
    click.echo(f"user {username} ({role}) saved")


def _new_password(given: str | None, from_stdin: bool) -> str:
    if given is not None and from_stdin:
        raise click.UsageError("give --password or --password-stdin, not both")
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if given is not None:
        return given
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _run(coro: Any) -> None:
    try:
        asyncio.run(coro)
    except FmonError as exc:
        raise click.ClickException(str(exc)) from None


def _check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise click.BadParameter(f"port {port} on {host} is in use", param_hint=what) from None


main.add_command(simulate)
main.add_command(contract)
main.add_command(inventory)
main.add_command(rules)
main.add_command(playbooks)
main.add_command(maintenance)

if __name__ == "__main__":
    sys.exit(main())
