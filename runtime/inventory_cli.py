"""`fmon inventory …`: import a YAML or CSV inventory into the device registry, list devices."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from core.clock import SystemClock
from core.errors import ConfigError
from core.schema import DEFAULT_REPORT_INTERVAL_S
from runtime.cli_support import CONFIG_OPTION, state_database
from storage.state.registry import DeviceRecord, ImportReport, RegistryStore


@click.group()
def inventory() -> None:
    """Device registry: sites, buildings, zones, gateways and devices (docs/inventory.md)."""


@inventory.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate, and report what would change without saving it.")
@click.option("--actor", default="cli", show_default=True, help="Who imports, for the audit log.")
@CONFIG_OPTION
def inventory_import(file: Path, dry_run: bool, actor: str, config_file: Path | None) -> None:
    """Import FILE (.yaml, .yml or .csv) into the device registry.

    FILE is validated, then upserted in one transaction; records missing from FILE are kept.
    On invalid input nothing is saved and every problem is listed as FILE:LINE: FIELD: PROBLEM.
    """
    from ingest.inventory import load_inventory

    try:
        parsed = load_inventory(file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    with state_database(config_file) as db:
        report = RegistryStore(db).apply(parsed, SystemClock().now(), actor=actor, dry_run=dry_run)
    for line in report_lines(report):
        click.echo(line)


@inventory.command("list")
@click.option("--site", help="Only this site's devices.")
@CONFIG_OPTION
def inventory_list(site: str | None, config_file: Path | None) -> None:
    """List registered devices: location, gateway, report interval."""
    with state_database(config_file) as db:
        devices = RegistryStore(db).devices(site)
    if not devices:
        click.echo(f"no devices registered{f' in site {site}' if site else ''}")
        return
    for line in device_lines(devices):
        click.echo(line)
    if any(d.report_interval_s is None for d in devices):
        click.echo("* the family's default interval (core.schema.DEFAULT_REPORT_INTERVAL_S)")


@inventory.command("acl")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--service-user", default="fmon", show_default=True, help="The account of fmon's own processes.")
@click.option("--site-user", "site_users", multiple=True, metavar="USER=SITE",
              help="An extra account confined to one site (e.g. a simulator); repeatable.")
@CONFIG_OPTION
def inventory_acl(out: Path | None, service_user: str, site_users: tuple[str, ...], config_file: Path | None) -> None:
    """Generate the Mosquitto ACL from the registry: one account per gateway and fire panel
    (SITE.GATEWAY_ID), confined to its own site's topics; reload the broker after writing it."""
    from ingest.broker_acl import acl_text

    extra = []
    for item in site_users:
        user, _, site = item.partition("=")
        if not user or not site:
            raise click.BadParameter(f"{item!r} must look like USER=SITE", param_hint="--site-user")
        extra.append((user, site))
    with state_database(config_file) as db:
        gateways = RegistryStore(db).gateways()
    try:
        text = acl_text(gateways, service_user=service_user, extra_site_users=extra)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}: {len(gateways)} gateway account(s), reload the broker (SIGHUP) to apply", err=True)


def report_lines(report: ImportReport) -> Iterator[str]:
    """The import report as a small table."""
    verb = "would import (dry run, nothing saved)" if report.dry_run else "imported"
    yield f"{verb} {report.source}"
    yield f"{'':<10}{'created':>9}{'updated':>9}{'unchanged':>11}"
    for kind in report.created:
        yield f"{kind:<10}{report.created[kind]:>9}{report.updated[kind]:>9}{report.unchanged[kind]:>11}"


def device_lines(devices: Sequence[DeviceRecord]) -> Iterator[str]:
    """Devices as aligned columns; names last, because CJK characters break alignment."""
    header = ("site", "family", "device_id", "kind", "building", "zone", "gateway", "interval_s", "by", "name")
    rows = [header] + [_device_row(d) for d in devices]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]


def _device_row(d: DeviceRecord) -> tuple[str, ...]:
    interval = d.report_interval_s if d.report_interval_s is not None else DEFAULT_REPORT_INTERVAL_S[d.family]
    marker = "" if d.report_interval_s is not None else "*"  # * = the family's default
    name = " / ".join(n for n in (d.name_zh, d.name_en) if n)
    return (d.site, d.family.value, d.device_id, d.kind or "-", d.building_id or "-", d.zone_id or "-",
            d.gateway_id or "-", f"{interval:g}{marker}", d.registered_by, name)


