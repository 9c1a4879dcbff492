"""The real services the tests run against: Mosquitto, InfluxDB 1.x and PostgreSQL.

Each listens on free loopback ports, keeps its config, data and log in its own temp dir, and
is stopped by PID (see `process.ManagedService`). Usage::

    server = MosquittoServer()
    server.start()          # raises ServiceUnavailable if the binary is not installed
    ... server.url ...
    server.stop()
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from .binaries import find_binary, find_postgres_bindir
from .errors import ServiceStartError, ServiceUnavailable
from .process import HOST, ManagedService, free_port, free_ports, tcp_open

HTTP_TIMEOUT_S = 10.0


def _running_as_root() -> bool:
    return os.geteuid() == 0


class MosquittoServer(ManagedService):
    """Mosquitto 2.x broker on one loopback listener: anonymous access by default; with `users`
    ({name: password}) only those log in (a password file made by `mosquitto_passwd -b`), and
    with `acl` (the text of a Mosquitto ACL file) they may use only the topics it grants."""

    name = "mosquitto"

    def __init__(self, *, users: Mapping[str, str] | None = None, acl: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._port = 0
        self._users = dict(users or {})
        self._acl = acl

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self._port}"

    def _configure(self, workdir: Path) -> list[str]:
        binary = find_binary("mosquitto", "mosquitto")
        self._port = free_port()
        config = workdir / "mosquitto.conf"
        config.write_text(self._config_text() + self._auth_text(workdir))
        return [binary, "-c", str(config)]

    def _auth_text(self, workdir: Path) -> str:
        """Password file and ACL lines; empty for the default anonymous broker."""
        if not self._users and self._acl is None:
            return ""
        passwd = workdir / "passwd"
        tool = find_binary("mosquitto_passwd", "mosquitto")
        for index, (user, password) in enumerate(self._users.items()):
            create = ["-c"] if index == 0 else []  # -c creates (and truncates) the file
            subprocess.run([tool, *create, "-b", str(passwd), user, password], check=True, capture_output=True)
        lines = [f"password_file {passwd}"] if self._users else []
        if self._acl is not None:
            acl = workdir / "acl"
            acl.write_text(self._acl)
            lines.append(f"acl_file {acl}")
        return "\n".join(lines) + "\n"

    def _config_text(self) -> str:
        lines = [
            f"listener {self._port} {HOST}",
            "allow_anonymous false" if self._users else "allow_anonymous true",
            "persistence false",
            # The default (1000) silently drops QoS 0 messages queued for a slow consumer.
            "max_queued_messages 100000",
            "max_inflight_messages 0",  # 0 = no limit on QoS 1/2 messages in flight per client
            "log_dest stderr",  # the base class sends stderr to mosquitto.log in the temp dir
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if _running_as_root():
            lines.append("user root")  # otherwise it drops to user `mosquitto`
        return "\n".join(lines) + "\n"

    def _is_ready(self) -> bool:
        return tcp_open(HOST, self._port)


class InfluxServer(ManagedService):
    """InfluxDB 1.x (`influxd`) with its HTTP API and its RPC port on free loopback ports."""

    name = "influxd"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._http_port = 0
        self._rpc_port = 0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._http_port}"

    def _configure(self, workdir: Path) -> list[str]:
        binary = find_binary("influxd", "influxdb")
        self._http_port, self._rpc_port = free_ports(2)
        config = workdir / "influxdb.conf"
        config.write_text(self._config_text(workdir))
        return [binary, "-config", str(config)]

    def _config_text(self, workdir: Path) -> str:
        # Sections left out keep their defaults: graphite, collectd, opentsdb, udp and ifql are
        # disabled by default; [admin] no longer exists in 1.6 (it is silently ignored).
        return f"""\
reporting-disabled = true
bind-address = "{HOST}:{self._rpc_port}"

[meta]
  dir = "{workdir / "meta"}"

[data]
  dir = "{workdir / "data"}"
  wal-dir = "{workdir / "wal"}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "{HOST}:{self._http_port}"
  log-enabled = false

[logging]
  suppress-logo = true
"""

    def _is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/ping", timeout=1.0).status_code == 204
        except httpx.HTTPError:
            return False

    def query(self, db: str, influxql: str) -> dict[str, Any]:
        """Run a read query (GET /query) and return the parsed JSON response."""
        params = {"db": db, "q": influxql}
        response = httpx.get(f"{self.base_url}/query", params=params, timeout=HTTP_TIMEOUT_S)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def create_database(self, name: str) -> str:
        """Create database `name`; return its URL, http://127.0.0.1:PORT/NAME."""
        self._admin(f"CREATE DATABASE {_influx_ident(name)}")
        return f"{self.base_url}/{name}"

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE {_influx_ident(name)}")

    def _admin(self, statement: str) -> None:
        response = httpx.post(f"{self.base_url}/query", data={"q": statement}, timeout=HTTP_TIMEOUT_S)
        response.raise_for_status()
        errors = [r["error"] for r in response.json().get("results", []) if "error" in r]
        if errors:
            raise RuntimeError(f"InfluxDB rejected {statement!r}: {errors}")


def _influx_ident(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class PostgresServer(ManagedService):
    """PostgreSQL cluster made by initdb in a temp dir, with trust auth on 127.0.0.1.

    initdb and postgres refuse to run as root: as root they run as the `postgres` OS user
    through `runuser`, in a temp dir under /tmp owned by that user.
    """

    name = "postgres"
    # "Fast" shutdown: unlike SIGTERM's "smart" one, it does not wait for clients to leave.
    stop_signal = signal.SIGINT
    user = "postgres"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._port = 0

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database `dbname`."""
        return f"postgresql+psycopg://{self.user}@{HOST}:{self._port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database `name`; return its SQLAlchemy URL."""
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name`, disconnecting its clients."""
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _admin(self, statement: sql.Composed) -> None:
        with self._connect() as conn:
            conn.execute(statement)

    def _connect(self, timeout: int = 10) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=HOST, port=self._port, user=self.user, dbname="postgres", connect_timeout=timeout, autocommit=True
        )

    def _make_workdir(self) -> Path:
        # Under /tmp itself: pytest's own temp dirs are 0700 root and the postgres user can't enter.
        return Path(tempfile.mkdtemp(prefix="fmon-postgres-", dir="/tmp"))

    def _configure(self, workdir: Path) -> list[str]:
        bindir = find_postgres_bindir()
        run_as = self._run_as_prefix(workdir)
        self._initdb(run_as, bindir, workdir)
        self._port = free_port()
        settings = {
            "listen_addresses": HOST,
            "port": str(self._port),
            "unix_socket_directories": str(workdir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        return [*run_as, str(bindir / "postgres"), "-D", str(workdir / "data"), *options]

    def _run_as_prefix(self, workdir: Path) -> list[str]:
        """[] when not root; else chown `workdir` to the postgres user and return a runuser prefix."""
        if not _running_as_root():
            return []
        try:
            account = pwd.getpwnam(self.user)
        except KeyError:
            raise ServiceUnavailable(f"OS user {self.user!r}", "postgresql") from None
        os.chown(workdir, account.pw_uid, account.pw_gid)
        return [find_binary("runuser", "util-linux"), "-u", self.user, "--"]

    def _initdb(self, run_as: list[str], bindir: Path, workdir: Path) -> None:
        argv = [*run_as, str(bindir / "initdb"), "-D", str(workdir / "data"), "-U", self.user]
        argv += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise ServiceStartError(f"initdb failed with code {done.returncode}:\n{output}", exited=False)

    def _stop_pid(self, proc: subprocess.Popen[bytes]) -> int:
        # Signal the postmaster itself: runuser would turn any signal into SIGTERM ("smart"
        # shutdown, which waits for clients) and SIGKILL it 2 s later.
        try:
            return int((self.workdir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return proc.pid

    def _is_ready(self) -> bool:
        try:
            with self._connect(timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True
