"""`fmon simulate …`: simulated devices talking to a broker like real gateways."""

from __future__ import annotations

import signal
import threading

import click

from core.broker import BrokerAddress
from core.clock import SystemClock
from core.errors import FmonError


@click.group()
def simulate() -> None:
    """Simulated devices talking to a broker like real gateways."""


@simulate.command("run")
@click.option("--broker", required=True, help="mqtt://host:port or mqtts://user:pass@host:port")
@click.option("--site", default="demo", show_default=True, help="Site id to publish as.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--interval", type=float, default=5.0, show_default=True, help="Seconds between readings.")
def simulate_run(broker: str, site: str, seed: int, interval: float) -> None:
    """Publish the demo site's telemetry until interrupted."""
    from simulators.site import SitePublisher, demo_site

    try:
        address = BrokerAddress.parse(broker)
        sim = demo_site(site, seed)
    except (FmonError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    publisher = SitePublisher(sim, address, SystemClock(), interval)
    publisher.start()
    click.echo(f"simulating site {site} against {address.url}; Ctrl-C to stop")
    wait_for_signal()
    publisher.stop()


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
