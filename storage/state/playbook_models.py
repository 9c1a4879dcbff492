"""ORM models of running playbooks: an incident's playbook run, its steps, their device commands
and the evidence people attach (issue 7).

    incidents 1 ── 0..1 playbook_runs 1 ── * run_steps 1 ── * step_commands
                                                      1 ── * step_evidence

A run keeps a snapshot of the playbook it started with (`definition`, with `playbook_hash`), so
a playbook file edited or reloaded later never changes an incident already running. Every
deadline is a column (`deadline_at`, `ack_deadline_at`, `readback_deadline_at`): the planner in
`playbooks/` computes what is due from these rows alone, so a restart loses no clock.

Registered on `storage.state.models.Base`; migration 0007 follows these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.state.models import Base


class PlaybookRun(Base):
    """One playbook running on one incident (at most one run per incident)."""

    __tablename__ = "playbook_runs"
    __table_args__ = (Index("ix_playbook_runs_state", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), unique=True)
    playbook_key: Mapped[str] = mapped_column(String(64), index=True)
    playbook_version: Mapped[int]  # the schema version of the snapshot
    playbook_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the snapshot
    definition: Mapped[dict[str, Any]]  # the playbook as it was when the run started
    grade: Mapped[int]  # response level: the incident's grade, followed as it worsens
    source_alarm_id: Mapped[int | None]  # the alarm that started it (None: started by a person)
    source_device: Mapped[str | None] = mapped_column(String(200))  # site/family/device for `target: source`
    state: Mapped[str] = mapped_column(String(16))  # running, closed
    started_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(64))
    close_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy declarative attribute


class RunStep(Base):
    """One applicable step of a run: who, by when, in which state, done by whom."""

    __tablename__ = "run_steps"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", name="uq_run_steps_step"),
        Index("ix_run_steps_open", "status", "deadline_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("playbook_runs.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int]  # order in the playbook
    kind: Mapped[str] = mapped_column(String(16))  # manual, notify, command, decision
    role: Mapped[str] = mapped_column(String(32))
    mandatory: Mapped[bool]
    assignee: Mapped[str | None] = mapped_column(String(64))
    deadline_at: Mapped[datetime]
    # pending, in_progress, awaiting_confirmation, done, skipped, failed
    status: Mapped[str] = mapped_column(String(24))
    status_reason: Mapped[str | None] = mapped_column(Text)  # why skipped or failed
    option: Mapped[str | None] = mapped_column(String(64))  # the decision's chosen option
    added_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    confirmed_by: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(64))
    done_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]  # when the overdue escalation was recorded
    failure_notified_at: Mapped[datetime | None]  # when the failure escalation was recorded
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy declarative attribute


class StepCommand(Base):
    """One device command of a command step: sent, acknowledged, read back from telemetry."""

    __tablename__ = "step_commands"
    __table_args__ = (Index("ix_step_commands_state", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_step_id: Mapped[int] = mapped_column(ForeignKey("run_steps.id"), index=True)
    command_id: Mapped[str] = mapped_column(String(64), unique=True)  # the `id` the device acknowledges
    attempt: Mapped[int]  # 1, then 2… for each time the step's command was confirmed again
    device: Mapped[str] = mapped_column(String(200))  # site/family/device
    name: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    expect: Mapped[dict[str, Any]]  # metric → value the device must report afterwards
    state: Mapped[str] = mapped_column(String(16))  # queued, sent, acked, done, failed
    queued_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    ack_deadline_at: Mapped[datetime | None]
    readback_deadline_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    ack_status: Mapped[str | None] = mapped_column(String(16))  # done, rejected
    ack_reason: Mapped[str | None] = mapped_column(Text)
    readback_at: Mapped[datetime | None]
    readback_value: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class StepEvidence(Base):
    """A comment or a photo link someone attached to a step."""

    __tablename__ = "step_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_step_id: Mapped[int] = mapped_column(ForeignKey("run_steps.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    photo_url: Mapped[str | None] = mapped_column(Text)
