"""Test harness: real Mosquitto, InfluxDB and PostgreSQL servers on free loopback ports.

Each server runs from a temp dir and is stopped by PID; see services.py for the servers,
process.py for how they are run, and tests/conftest.py for the pytest fixtures.
"""

from .errors import ServiceStartError, ServiceUnavailable
from .process import ManagedService, free_port, pid_alive, process_tree
from .services import InfluxServer, MosquittoServer, PostgresServer

__all__ = [
    "InfluxServer",
    "ManagedService",
    "MosquittoServer",
    "PostgresServer",
    "ServiceStartError",
    "ServiceUnavailable",
    "free_port",
    "pid_alive",
    "process_tree",
]
