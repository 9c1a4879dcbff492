"""The API process: FastAPI under uvicorn, plus the relay of alarm and incident events to WebSockets.

Operators start incidents with the playbooks of the shipped library (`playbooks/library`)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import timedelta

import uvicorn
from prometheus_client import CollectorRegistry

from api.app import create_app
from api.deps import ApiServices
from api.hub import EventHub
from api.security import TokenIssuer
from core.broker import BrokerAddress
from core.clock import Clock
from core.settings import Settings
from playbooks.loader import default_playbooks
from runtime.bus import relay_alarm_events
from runtime.stores import open_telemetry_store
from storage.state.database import StateDatabase
from storage.state.dead_letters import DeadLetterStore
from storage.state.users import UserStore

# How often open streams re-check their token's expiry and their user (api/routes/stream.py):
# a disabled user or an expired token stops receiving events within this time.
STREAM_RECHECK_S = 15.0


def build_services(settings: Settings, db: StateDatabase, clock: Clock,
                   metrics: CollectorRegistry | None = None, *, telemetry: bool = False) -> ApiServices:
    """The API's services; with `telemetry`, the telemetry store of the settings is opened for the
    history routes (closed when `serve_api` ends)."""
    # The demo may run without a configured secret: tokens then last one process lifetime.
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else secrets.token_urlsafe(48)
    tokens = TokenIssuer(secret, timedelta(minutes=settings.jwt_ttl_minutes))
    return ApiServices(db, UserStore(db), DeadLetterStore(db), tokens, clock, EventHub(),
                       metrics or CollectorRegistry(), playbooks=default_playbooks(),
                       max_shelve=timedelta(hours=settings.alarm_max_shelve_hours),
                       telemetry=open_telemetry_store(settings) if telemetry else None)


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to fmon's own shutdown."""

    def install_signal_handlers(self) -> None:
        return None


async def serve_api(settings: Settings, services: ApiServices, stop: asyncio.Event,
                    started: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set; relays alarm events from the bus meanwhile."""
    services.hub.bind(asyncio.get_running_loop())
    app = create_app(services)
    config = uvicorn.Config(app, host=settings.api_host, port=settings.api_port,
                            log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5)
    server = QuietServer(config)
    subscribed = asyncio.Event()
    relay = asyncio.create_task(
        relay_alarm_events(BrokerAddress.parse(settings.broker_url), services.hub, subscribed))
    serving = asyncio.create_task(server.serve())
    recheck = asyncio.create_task(revalidate_streams(services.hub, stop, STREAM_RECHECK_S))
    while not (server.started and subscribed.is_set()) and not serving.done():
        await asyncio.sleep(0.05)
    if serving.done():
        relay.cancel()
        recheck.cancel()
        await serving  # re-raises why uvicorn could not start
        raise SystemExit(f"could not serve the API on {settings.api_host}:{settings.api_port}")
    if started is not None:
        started.set()
    await stop.wait()
    services.hub.close()
    server.should_exit = True
    relay.cancel()
    await asyncio.gather(serving, relay, recheck, return_exceptions=True)
    if services.telemetry is not None:
        services.telemetry.close()


async def revalidate_streams(hub: EventHub, stop: asyncio.Event, every_s: float) -> None:
    """Tell the open streams to re-check their access every `every_s` seconds until `stop`."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        if stop.is_set():  # the streams are being closed
            return
        hub.revalidate()
