"""One server process for tests: temp dir, log file, readiness wait, stop by PID.

A subclass writes its config into a fresh temp dir and returns its command line
(`_configure`), and says when the server answers (`_is_ready`). The base class starts it in
its own session (so its process group id is its PID), waits for readiness with a deadline,
and stops it: a signal to its PID, SIGKILL to its process group after a timeout, then the
temp dir is removed. `stop()` is registered with atexit so a crashed session leaks nothing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from contextlib import closing, suppress
from pathlib import Path
from types import TracebackType
from typing import Self

from .errors import ServiceStartError

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# Fresh ports on each attempt: another process may take a port between probe and bind.
START_ATTEMPTS = 3
POLL_INTERVAL_S = 0.05
LOG_TAIL_LINES = 30


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """Return one TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, ..."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """True while `pid` names a running process (a zombie counts as gone)."""
    fields = _proc_stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def process_tree(root: int) -> list[int]:
    """`root` and its live descendants (postgres children run in sessions of their own)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        fields = _proc_stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and fields[0] not in ("Z", "X"):
            parents[int(entry.name)] = int(fields[1])
    tree = [root] if root in parents else []
    for pid in tree:  # grows while iterating: breadth-first walk
        tree += [child for child, parent in parents.items() if parent == pid]
    return tree


class ManagedService(ABC):
    """Base class of the real services started by the tests."""

    name = "service"
    stop_signal = signal.SIGTERM

    def __init__(self, start_timeout: float = START_TIMEOUT_S, stop_timeout: float = STOP_TIMEOUT_S) -> None:
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    @abstractmethod
    def _configure(self, workdir: Path) -> list[str]:
        """Pick ports, write config files into `workdir`; return the server's command line."""

    @abstractmethod
    def _is_ready(self) -> bool:
        """True once the server answers requests."""

    def _make_workdir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"fmon-{self.name}-"))

    def _stop_pid(self, proc: subprocess.Popen[bytes]) -> int:
        """The PID that receives `stop_signal`; the launched process unless a subclass knows better."""
        return proc.pid

    @property
    def pid(self) -> int:
        """PID of the launched process (also its process group id)."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def workdir(self) -> Path:
        """Temp dir holding this server's config, data and log; removed by stop()."""
        if self._workdir is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._workdir

    @property
    def log_path(self) -> Path:
        """File receiving the server's stdout and stderr."""
        return self.workdir / f"{self.name}.log"

    def pids(self) -> list[int]:
        """PIDs of the launched process and of every process it started."""
        return process_tree(self.pid)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"

    def start(self) -> None:
        """Start the server and wait until it is ready; no-op when already running."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once()
            except ServiceStartError as exc:
                if not exc.exited or attempt == START_ATTEMPTS:
                    raise
            else:
                return

    def _start_once(self) -> None:
        if self._proc is not None:
            return
        try:
            self._workdir = self._make_workdir()
            self._launch(self._configure(self._workdir))
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _launch(self, argv: list[str]) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        atexit.register(self.stop)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll() if self._proc else None
            if code is not None:
                raise self._start_error(f"exited with code {code}", exited=True)
            if self._is_ready():
                return
            time.sleep(POLL_INTERVAL_S)
        raise self._start_error(f"was not ready within {self.start_timeout:.0f} s", exited=False)

    def _start_error(self, what: str, *, exited: bool) -> ServiceStartError:
        message = f"{self.name} {what}; last lines of {self.log_path}:\n{self.log_tail()}"
        return ServiceStartError(message, exited=exited)

    def stop(self) -> None:
        """Stop the server by PID (SIGKILL to its group after the timeout) and remove its temp dir."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            self._terminate(proc)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self._stop_pid(proc), self.stop_signal)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(self.stop_timeout)
        # Whatever is left of the process group, if anything.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
