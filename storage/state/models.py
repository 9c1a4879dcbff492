"""ORM models of the state database. Migrations in `storage/migrations` follow these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(128), default="")
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class Alarm(Base):
    """One alarm: one occurrence of a rule's condition on one source (ISA-18.2 states)."""

    __tablename__ = "alarms"
    __table_args__ = (
        # One open alarm per (rule, source); a new occurrence after `normal` is a new row.
        Index(
            "uq_alarms_open_rule_source", "rule_id", "source", unique=True,
            sqlite_where=text("state != 'normal'"), postgresql_where=text("state != 'normal'"),
        ),
        Index("ix_alarms_state_grade", "state", "grade"),
        Index("ix_alarms_raised_at", "raised_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(200))
    site: Mapped[str] = mapped_column(String(64), index=True)
    family: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    grade: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    message_zh: Mapped[str] = mapped_column(Text)
    message_en: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None]
    raised_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]
    repeat_count: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(default=1)
    building: Mapped[str | None] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(64))
    latching: Mapped[bool] = mapped_column(default=False)
    condition_active: Mapped[bool] = mapped_column(default=True)
    shelved_until: Mapped[datetime | None]
    shelved_by: Mapped[str | None] = mapped_column(String(64))
    shelve_reason: Mapped[str | None] = mapped_column(Text)
    suppressed_by: Mapped[str | None] = mapped_column(String(200))  # by design: maintenance, parent alarm
    out_of_service: Mapped[bool] = mapped_column(default=False)
    parent_id: Mapped[int | None] = mapped_column(index=True)  # the alarm that inhibits this one
    incident_id: Mapped[int | None] = mapped_column(index=True)  # the incident (flood group) it belongs to

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy declarative attribute


class AuditEntry(Base):
    """Who did what, when and why; appended in the same transaction as the change."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class DeadLetter(Base):
    """A message fmon could not accept, kept with the reason (never a silent drop)."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    topic: Mapped[str] = mapped_column(Text)
    device_key: Mapped[str | None] = mapped_column(String(200), index=True)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload_excerpt: Mapped[str] = mapped_column(Text)


# --- Device registry (storage/state/registry.py): site → building → zone; gateways own devices ---
# Natural keys: ids are the v1 contract ids (DESIGN.md §3), unique within their parent. Composite
# foreign keys with a NULL part are not enforced (MATCH SIMPLE), which is what optional
# locations and parents need.


class Site(Base):
    """One property project (项目/小区): the `{site}` of every topic."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(128), default="")
    name_en: Mapped[str] = mapped_column(String(128), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    auto_register: Mapped[bool] = mapped_column(default=False)


class Building(Base):
    """A building (楼栋) of a site."""

    __tablename__ = "buildings"

    site: Mapped[str] = mapped_column(String(64), ForeignKey("sites.id"), primary_key=True)
    building_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(128), default="")
    name_en: Mapped[str] = mapped_column(String(128), default="")


class Zone(Base):
    """A floor or zone of a building: floor, room, plant room, shaft…"""

    __tablename__ = "zones"
    __table_args__ = (
        ForeignKeyConstraint(["site", "building_id"], ["buildings.site", "buildings.building_id"]),
    )

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    building_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    floor: Mapped[int | None]
    kind: Mapped[str] = mapped_column(String(32), default="zone")
    name_zh: Mapped[str] = mapped_column(String(128), default="")
    name_en: Mapped[str] = mapped_column(String(128), default="")


class Gateway(Base):
    """A gateway or a fire panel: the parent of the devices that report through it."""

    __tablename__ = "gateways"
    __table_args__ = (
        ForeignKeyConstraint(["site"], ["sites.id"]),
        ForeignKeyConstraint(["site", "building_id"], ["buildings.site", "buildings.building_id"]),
        ForeignKeyConstraint(["site", "building_id", "zone_id"], ["zones.site", "zones.building_id", "zones.zone_id"]),
    )

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="gateway")
    building_id: Mapped[str | None] = mapped_column(String(64))
    zone_id: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")


class Device(Base):
    """A device of the registry, identified like a topic: (site, family, device_id)."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("site", "family", "device_id", name="uq_devices_site_family_device"),
        ForeignKeyConstraint(["site"], ["sites.id"]),
        ForeignKeyConstraint(["site", "building_id"], ["buildings.site", "buildings.building_id"]),
        ForeignKeyConstraint(["site", "building_id", "zone_id"], ["zones.site", "zones.building_id", "zones.zone_id"]),
        ForeignKeyConstraint(["site", "gateway_id"], ["gateways.site", "gateways.gateway_id"]),
        Index("ix_devices_site_gateway", "site", "gateway_id"),
        Index("ix_devices_site_location", "site", "building_id", "zone_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    family: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), default="")
    building_id: Mapped[str | None] = mapped_column(String(64))
    zone_id: Mapped[str | None] = mapped_column(String(64))
    gateway_id: Mapped[str | None] = mapped_column(String(64))
    equipment_id: Mapped[str | None] = mapped_column(String(64))
    name_zh: Mapped[str] = mapped_column(String(128), default="")
    name_en: Mapped[str] = mapped_column(String(128), default="")
    report_interval_s: Mapped[float | None]
    registered_by: Mapped[str] = mapped_column(String(16), default="inventory")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RuleState(Base):
    """The durable evaluation state and timers of one (rule, source) of the rules engine."""

    __tablename__ = "rule_state"

    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class Incident(Base):
    """Alarms of one zone and cause grouped into one record; playbooks run on incidents."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_open", "site", "zone", "cause", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    building: Mapped[str | None] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(64))  # the alarm category, e.g. fire
    playbook: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # open, closed
    grade: Mapped[int] = mapped_column(Integer)  # the most severe grade among its alarms
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    alarm_count: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1)
    # When all its alarms were last normal. An incident with a playbook run stays open after
    # that (the run closes it); without a run it closes at that moment.
    alarms_cleared_at: Mapped[datetime | None]

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy declarative attribute


class Notification(Base):
    """The notification log: what was sent to whom for which alarm and why. The unique key
    makes a notification happen once, also across restarts."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("alarm_id", "receiver", "reason", name="uq_notifications_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(index=True)
    receiver: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))  # webhook, email, wecom, dingtalk
    reason: Mapped[str] = mapped_column(String(64))  # raised, escalation-1, renotify-3, cleared…
    status: Mapped[str] = mapped_column(String(16))  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class Maintenance(Base):
    """Maintenance mode on a device, a zone or a piece of equipment: alarms raised there while it
    lasts are suppressed by design (recorded, not annunciated)."""

    __tablename__ = "maintenance"
    __table_args__ = (Index("ix_maintenance_active", "site", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(16))  # device, zone, building, equipment
    target: Mapped[str] = mapped_column(String(200))  # site/family/device, building/zone, building, equipment id
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    until: Mapped[datetime]
    ended_at: Mapped[datetime | None]


# The tables of running playbooks and of the equipment ledger live in their own modules; importing
# them here registers them on Base.metadata for migrations and mapper configuration.
from storage.state import equipment_models as _equipment_models  # noqa: E402, F401
from storage.state import playbook_models as _playbook_models  # noqa: E402, F401
