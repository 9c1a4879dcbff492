"""Device-command steps: queue, send, acknowledge, read back, time out.

A command step becomes one `step_commands` row per target device (`target: source` = the device
of the alarm that started the incident; `target: zone` = the devices of `family` in the
incident's place, from the registry). A row's life:

    queued ──send──► sent ──ack done + read-back──► done
       │               ├──ack rejected───────────► failed
       ├───────────────┴──ack or read-back late──► failed
       └── the step is skipped or the incident closed ─► cancelled

The read-back is telemetry: a live reading of the device, handled after the command was handed to
the broker, whose metrics equal `expect` (e.g. `valve: closed`). Either may arrive first. The
ack and read-back deadlines are columns set when the row is queued, so the planner finds late
rows from the database after a restart. The step follows its rows: done when all are done,
failed when one failed. Sending goes through `CommandSender` (runtime implements it over MQTT;
tests pass an in-memory one). A resend after a crash reuses the command id: devices answer a
repeated id again without acting twice (DESIGN.md §3, simulators/engine.py).

Functions change rows in the caller's session; `ReadbackWatcher` is the in-memory index the
ingest hot path checks, rebuilt from the rows.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.domain import DeviceRef, MetricValue, Reading
from playbooks import runs
from playbooks.model import DeviceCommand, Step, StepKind
from playbooks.runs import StepStatus
from storage.state.models import Device, Incident
from storage.state.playbook_models import PlaybookRun, RunStep, StepCommand

QUEUED, SENT, DONE, FAILED, CANCELLED = "queued", "sent", "done", "failed", "cancelled"
WAITING = (QUEUED, SENT)


@dataclass(frozen=True, slots=True)
class OutgoingCommand:
    """A command to publish on `fmon/v1/{site}/{family}/{device}/command`."""

    device: DeviceRef
    command_id: str
    name: str
    params: Mapping[str, Any]

    def payload(self) -> bytes:
        """The v1 command body (docs/asyncapi.yaml `command`)."""
        return orjson.dumps({"id": self.command_id, "command": self.name, "args": dict(self.params)})


class CommandSender(Protocol):
    """Hands a command to the transport; False if it cannot now (it is tried again)."""

    def send(self, command: OutgoingCommand) -> bool: ...


@dataclass(frozen=True, slots=True)
class Ack:
    """A device's answer on `…/command/ack`: `{"id", "status": done|rejected, "reason"?}`."""

    device: DeviceRef
    command_id: str
    status: str
    reason: str | None = None


def parse_ack(device: DeviceRef, payload: bytes) -> Ack | None:
    """The ack in a payload, or None when it is not one (not JSON, no id, unknown status)."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or body.get("status") not in ("done",
                                                                                                      "rejected"):
        return None
    reason = body.get("reason")
    return Ack(device, body["id"], body["status"], reason if isinstance(reason, str) else None)


# --- queueing ------------------------------------------------------------------------------------

def queue(session: Session, run: PlaybookRun, row: RunStep, step: Step, actor: str,
          now: datetime) -> list[StepCommand] | str:
    """Queue the step's command to each target; the step is then in progress. Returns the rows,
    or why there is nothing to command (the step is then failed with that reason). Audited."""
    command = step.command
    assert command is not None, f"step {step.id} is not a command step"
    incident = session.get(Incident, run.incident_id)
    targets = _targets(session, run, incident, command)
    row.started_at, row.updated_at, row.failure_notified_at = now, now, None
    if isinstance(targets, str):
        fail_step(row, targets, now)
        session.add(runs.audit(now, actor, run.incident_id, "step.failed", targets, {"step": row.step_id}))
        return targets
    attempt = 1 + (session.scalar(select(func.max(StepCommand.attempt)).where(StepCommand.run_step_id == row.id))
                   or 0)
    created = [StepCommand(run_step_id=row.id, command_id=f"fmon-{uuid.uuid4().hex}", attempt=attempt, device=target,
                           name=command.name, params=dict(command.params), expect=dict(command.expect),
                           state=QUEUED, queued_at=now, ack_deadline_at=now + command.ack_timeout,
                           readback_deadline_at=now + command.readback_timeout if command.expect else None)
               for target in targets]
    session.add_all(created)
    row.status, row.status_reason = StepStatus.IN_PROGRESS.value, None
    session.add(runs.audit(now, actor, run.incident_id, "command.queued", f"{command.name} → {', '.join(targets)}",
                           {"step": row.step_id, "command": command.name, "devices": targets,
                            "command_ids": [c.command_id for c in created]}))
    return created


def queue_due(session: Session, run: PlaybookRun, now: datetime) -> list[RunStep]:
    """Grades 3–4 need no confirmation: a pending command step is sent when it is its turn, i.e.
    once every applicable step before it in the playbook is done or skipped (a playbook that
    starts with "start the exhaust fan" starts it at once; "stop the fan" waits for the steps
    before it). Returns the steps queued."""
    if run.state != runs.RUNNING or runs.needs_confirmation(run.grade):
        return []
    playbook, queued = runs.playbook_of(run), []
    for row in runs.steps_of(session, run.id):
        if row.kind == StepKind.COMMAND.value and row.status == StepStatus.PENDING.value:
            queue(session, run, row, playbook.step(row.step_id), runs.SYSTEM_ACTOR, now)
            queued.append(row)
        if row.status not in runs.SETTLED:
            break
    return queued


def _targets(session: Session, run: PlaybookRun, incident: Incident | None,
             command: DeviceCommand) -> list[str] | str:
    if command.target == "source":
        if run.source_device is None:
            return "事件没有来源设备 / the incident has no source device to command"
        if command.family is not None and run.source_device.split("/")[1] != command.family:
            return f"来源设备 {run.source_device} 不是 {command.family} / the source device is not a {command.family}"
        return [run.source_device]
    if incident is None:
        return "事件不存在 / the incident does not exist"
    query = select(Device).where(Device.site == incident.site, Device.family == command.family)
    if incident.building is not None:
        query = query.where(Device.building_id == incident.building)
    if incident.zone is not None:
        query = query.where(Device.zone_id == incident.zone)
    found = [f"{d.site}/{d.family}/{d.device_id}" for d in session.scalars(query.order_by(Device.device_id))]
    where = " / ".join(p for p in (incident.building, incident.zone) if p) or incident.site
    return found or f"{where} 没有 {command.family} 设备 / no {command.family} device in {where}"


def outgoing(row: StepCommand) -> OutgoingCommand:
    return OutgoingCommand(DeviceRef.from_key(row.device), row.command_id, row.name, row.params)


# --- answers ---------------------------------------------------------------------------------------

def record_ack(row: StepCommand, ack: Ack, now: datetime) -> None:
    """Note the device's answer; a rejection fails the row. A late answer to a failed row is
    kept for the record but does not revive it."""
    if row.acked_at is not None:
        return  # a repeated ack (the device answers a repeated id again)
    row.acked_at, row.ack_status, row.ack_reason = now, ack.status, ack.reason
    if row.state not in WAITING:
        return
    if ack.status == "rejected":
        row.state, row.error = FAILED, f"设备拒绝 / rejected by the device: {ack.reason or 'no reason given'}"
    elif row.readback_at is not None or not row.expect:
        row.state = DONE


def record_readback(row: StepCommand, values: Mapping[str, MetricValue], now: datetime) -> None:
    if row.state not in WAITING or row.readback_at is not None:
        return
    row.readback_at, row.readback_value = now, dict(values)
    if row.ack_status == "done":
        row.state = DONE


def expire(row: StepCommand, now: datetime) -> bool:
    """Fail the row if its ack or read-back is late; True if it failed now."""
    if row.state not in WAITING:
        return False
    if row.acked_at is None and row.ack_deadline_at is not None and now >= row.ack_deadline_at:
        sent = "" if row.sent_at is not None else "（未能发出 / could not be sent）"
        row.state, row.error = FAILED, f"未在时限内应答{sent} / no acknowledgement by {_iso(row.ack_deadline_at)}"
        return True
    if row.readback_at is None and row.readback_deadline_at is not None and now >= row.readback_deadline_at:
        wanted = ", ".join(f"{k}={v}" for k, v in row.expect.items())
        row.state, row.error = FAILED, f"未读回 {wanted} / no reading with {wanted} by {_iso(row.readback_deadline_at)}"
        return True
    return False


def follow_commands(row: RunStep, commands: Sequence[StepCommand], now: datetime) -> bool:
    """The step follows its commands: done when all are done, failed when one failed. True if
    the step changed."""
    if row.status != StepStatus.IN_PROGRESS.value or not commands:
        return False
    failed = [c for c in commands if c.state == FAILED]
    if failed:
        fail_step(row, "; ".join(f"{c.device}: {c.error}" for c in failed), now)
        return True
    if all(c.state == DONE for c in commands):
        runs.done(row, runs.SYSTEM_ACTOR, now)
        return True
    return False


def fail_step(row: RunStep, reason: str, now: datetime) -> None:
    row.status, row.status_reason, row.updated_at = StepStatus.FAILED.value, reason, now


def matches(expect: Mapping[str, Any], metrics: Mapping[str, MetricValue]) -> bool:
    return all(name in metrics and _same(metrics[name], wanted) for name, wanted in expect.items())


def _same(value: MetricValue, wanted: Any) -> bool:
    if isinstance(value, bool) or isinstance(wanted, bool):
        return value is wanted
    if isinstance(value, int | float) and isinstance(wanted, int | float):
        return float(value) == float(wanted)
    return bool(value == wanted)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# --- the read-back index --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Watch:
    command_row_id: int
    expect: Mapping[str, Any]


class ReadbackWatcher:
    """Which devices owe a read-back, for the ingest hot path: a dict lookup per reading, nothing
    when no command is waiting. Matches are queued for the scheduler to record."""

    def __init__(self) -> None:
        self._watches: dict[str, tuple[Watch, ...]] = {}
        self._matched: list[tuple[int, dict[str, MetricValue]]] = []
        self._lock = threading.Lock()

    def watch(self, rows: Sequence[StepCommand]) -> None:
        """Replace the index with the rows sent and still owing a read-back."""
        self._watches = _index([r for r in rows if r.state == SENT and r.expect and r.readback_at is None])

    def add(self, row: StepCommand) -> None:
        """Watch a row about to be sent (armed first: the device may report before it acknowledges)."""
        if row.expect and row.readback_at is None:
            index = {k: list(v) for k, v in self._watches.items()}
            index.setdefault(row.device, []).append(Watch(row.id, row.expect))
            self._watches = {device: tuple(watches) for device, watches in index.items()}

    def discard(self, row_id: int) -> None:
        """Stop watching a row (its command could not be sent after all)."""
        self._watches = {device: kept for device, watches in self._watches.items()
                         if (kept := tuple(w for w in watches if w.command_row_id != row_id))}

    def on_readings(self, readings: Sequence[Reading]) -> None:
        watches = self._watches
        if not watches:
            return
        for reading in readings:
            found = watches.get(reading.device.key)
            if found is None or reading.historical:
                continue
            for watch in found:
                if matches(watch.expect, reading.metrics):
                    values = {name: reading.metrics[name] for name in watch.expect}
                    with self._lock:
                        self._matched.append((watch.command_row_id, values))

    def take(self) -> list[tuple[int, dict[str, MetricValue]]]:
        with self._lock:
            matched, self._matched = self._matched, []
        return matched

    @property
    def devices(self) -> frozenset[str]:
        return frozenset(self._watches)


def _index(rows: Sequence[StepCommand]) -> dict[str, tuple[Watch, ...]]:
    index: dict[str, list[Watch]] = {}
    for row in rows:
        index.setdefault(row.device, []).append(Watch(row.id, row.expect))
    return {device: tuple(watches) for device, watches in index.items()}
