"""The embedded MQTT broker of `fmon demo` (amqtt, in-process, loopback only)."""

from __future__ import annotations

from amqtt.broker import Broker

from core.errors import ConfigError


async def start_embedded_broker(host: str, port: int) -> Broker:
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    try:
        await broker.start()
    except Exception as exc:  # amqtt raises its own BrokerError or OSError
        raise ConfigError(f"embedded MQTT broker cannot listen on {host}:{port}: {exc}") from exc
    return broker
