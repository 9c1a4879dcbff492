"""`fmon demo`: broker, stores, ingest, simulators, API and console in one process.

Embedded defaults (amqtt broker, SQLite telemetry and state under the data dir) unless real
services are given. Ctrl-C stops everything in order; alarms persist in the data dir.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from core.broker import BrokerAddress
from core.clock import SystemClock
from core.settings import Settings
from ingest.inventory import load_inventory
from maintenance import ledger, roster
from runtime.api_process import build_services, serve_api
from runtime.demo_users import SeedReport, describe, seed_demo_users
from runtime.embedded_broker import start_embedded_broker
from runtime.health_jobs import open_health_jobs, run_periodically
from runtime.ingest_process import build_ingest
from simulators.runner import SiteRunner, mqtt_connect
from simulators.site import demo_estate
from storage.state.database import StateDatabase
from storage.state.equipment_models import Equipment
from storage.state.registry import RegistryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    settings: Settings
    password: str | None
    embedded_broker_port: int | None  # None when a real broker is given
    sim_interval: float = 5.0


# Package data (shipped in the wheel and the image). docs/examples keeps identical copies for
# readers, checked equal by tests/test_packaging.py.
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
DEMO_INVENTORY = DEMO_DATA / "inventory.yaml"
DEMO_LEDGER = DEMO_DATA / "equipment.csv"
DEMO_ROSTER = DEMO_DATA / "technicians.csv"
HEALTH_JOBS_EVERY_S = 3600.0


def seed_demo_data(db: StateDatabase, now: datetime) -> None:
    """The demo estate's registry, equipment ledger and roster, on a database that has none."""
    seed_inventory(db, now)
    seed_equipment(db, now)


def seed_inventory(db: StateDatabase, now: datetime) -> None:
    """Register the simulated estate (buildings, zones, meter kinds) on a fresh demo database,
    so that location- and kind-specific rules apply; an existing registry is left alone."""
    store = RegistryStore(db)
    if store.sites():
        return
    report = store.apply(load_inventory(DEMO_INVENTORY), now, actor="demo")
    log.info("demo inventory imported: %s", report.counts())


def seed_equipment(db: StateDatabase, now: datetime) -> None:
    """The example equipment ledger and technician roster on a fresh demo database."""
    with db.session() as session:
        if session.scalar(select(func.count()).select_from(Equipment)):
            return
    ledger.import_csv(db, DEMO_LEDGER.read_text(encoding="utf-8"), DEMO_LEDGER.name, now, actor="demo")
    with db.session() as session:
        text = DEMO_ROSTER.read_text(encoding="utf-8")
        roster.apply(session, roster.parse_csv(text, DEMO_ROSTER.name), DEMO_ROSTER.name, now, actor="demo")


async def run_demo(options: DemoOptions) -> None:
    settings, clock = options.settings, SystemClock()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    broker = None
    if options.embedded_broker_port is not None:
        broker = await start_embedded_broker("127.0.0.1", options.embedded_broker_port)
    db = StateDatabase(settings.state_database_url)
    await asyncio.to_thread(db.upgrade)
    services = build_services(settings, db, clock, telemetry=True)
    accounts = await asyncio.to_thread(seed_demo_users, db, options.password, clock.now())
    await asyncio.to_thread(seed_demo_data, db, clock.now())
    ingest = build_ingest(settings, db, clock, services.metrics)  # one /metrics for the whole demo
    ingest.start()
    site = demo_estate(interval_s=options.sim_interval)  # all six device families
    sim = SiteRunner(site, mqtt_connect(BrokerAddress.parse(settings.broker_url), site.site_id), clock)
    await asyncio.to_thread(sim.start)
    health, health_store = open_health_jobs(settings, db)
    health_task = asyncio.create_task(run_periodically(health, clock, stop, HEALTH_JOBS_EVERY_S))
    started = asyncio.Event()
    api = asyncio.create_task(serve_api(settings, services, stop, started))
    await _announce(started, api, settings, accounts)
    try:
        await api
    finally:
        stop.set()
        await health_task
        health_store.close()
        await asyncio.to_thread(_shutdown, sim, ingest, db)
        if broker is not None:
            await broker.shutdown()
        print("fmon demo stopped.", flush=True)


async def _announce(started: asyncio.Event, api: asyncio.Task[None], settings: Settings,
                    accounts: SeedReport) -> None:
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({waiter, api}, return_when=asyncio.FIRST_COMPLETED)
    if api.done():
        waiter.cancel()
        await api
        return
    url = f"http://{settings.api_host}:{settings.api_port}/"
    print(f"fmon demo running: console {url}  (data in {settings.data_dir})", flush=True)
    for line in describe(accounts):
        print(line, flush=True)
    print("Ctrl-C to stop.", flush=True)


def _shutdown(sim: SiteRunner, ingest: object, db: StateDatabase) -> None:
    sim.stop()
    ingest.stop()  # type: ignore[attr-defined]
    db.dispose()
