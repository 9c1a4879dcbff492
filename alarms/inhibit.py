"""Inhibition from the topology: a parent failure hides its children's consequential alarms.

Alertmanager's inhibit rules applied to alarm rows, inside the alarm's own transaction (the
`Inhibitor` stage of `AlarmService`). A `Policy` says which alarms are parents, which are
children, and how one finds the other in the topology:

    gateway  an offline alarm (category comms) of a gateway or fire panel hides the comms
             (offline, stale) alarms of the devices the registry puts behind it (Device.gateway_id)
    power    a power alarm of an electricity meter in a building (the outage) hides that
             building's general (grade 3-4) elevator and pump alarms; entrapment and the car's
             alarm button never are (people may be trapped), nor is any emergency (grade 1-2)

A suppressed child is recorded, never lost: `parent_id` names its parent and `suppressed_by` is
``alarm:<parent id>``; lists show `suppressed_by IS NULL` (`visible()`). Either order works: a
child raised under an active parent is suppressed at once; a parent raised later adopts the open
children. A child that clears while suppressed goes straight to `normal` (never shown, nothing
to acknowledge). When the parent's condition clears each child moves to another active parent
if it has one, else is shown again if still active, else goes to `normal`. `parent_id` stays
as the record of what suppressed it. Every change is audited (`alarm.suppressed`,
`alarm.unsuppressed`, `alarm.normalised`); `activation` in the detail tells the KPIs which
activations were never annunciated.

Not for: maintenance suppression or shelving; `suppressed_by` values that do not start with
``alarm:`` belong to them and are never touched here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from alarms.events import alarm_view
from core.domain import AlarmState
from rules.model import ChangeKind, ConditionChange
from storage.state.models import Alarm, AuditEntry, Device

SYSTEM_ACTOR = "system"
TAG = "alarm:"  # suppressed_by of an alarm hidden by a parent alarm: "alarm:<parent id>"
OWNER_FAMILIES = ("gateway", "fire_panel")  # sources whose offline alarm hides their devices'
LIFE_SAFETY_RULES = frozenset({"elevator.entrapment", "elevator.entrapment_suspected", "elevator.alarm_button"})
OUTAGE_FAMILIES = ("elevator", "pump")  # stop when the building's power does


@dataclass(frozen=True, slots=True)
class Policy:
    """One inhibit rule: parent and child predicates, and the topology queries between them.

    The queries only narrow down candidates by topology; the predicates decide.
    """

    name: str
    is_parent: Callable[[Alarm], bool]
    is_child: Callable[[Alarm], bool]
    parent_candidates: Callable[[Alarm], Select[tuple[Alarm]]]
    child_candidates: Callable[[Alarm], Select[tuple[Alarm]]]


def _active() -> ColumnElement[bool]:
    return (Alarm.state != AlarmState.NORMAL.value) & Alarm.condition_active.is_(True)


# --- gateway: a gateway or fire panel offline hides its devices' offline alarms ------------------

def _gateway_parent(alarm: Alarm) -> bool:
    return alarm.category == "comms" and alarm.family in OWNER_FAMILIES


def _gateway_child(alarm: Alarm) -> bool:
    return alarm.category == "comms" and alarm.family != "gateway"


def _owners_alarms(child: Alarm) -> Select[tuple[Alarm]]:
    owner = select(Device.gateway_id).where(Device.site == child.site, Device.family == child.family,
                                            Device.device_id == child.device_id).scalar_subquery()
    return select(Alarm).where(Alarm.site == child.site, Alarm.family.in_(OWNER_FAMILIES),
                               Alarm.device_id == owner, _active()).order_by(Alarm.id)


def _owned_alarms(parent: Alarm) -> Select[tuple[Alarm]]:
    located = (Device.site == Alarm.site) & (Device.family == Alarm.family) & (Device.device_id == Alarm.device_id)
    return select(Alarm).join(Device, located).where(
        Device.site == parent.site, Device.gateway_id == parent.device_id, _active()).order_by(Alarm.id)


GATEWAY = Policy("gateway", _gateway_parent, _gateway_child, _owners_alarms, _owned_alarms)


# --- power: a building's outage hides the consequential lift and pump alarms ---------------------

def _outage(alarm: Alarm) -> bool:
    return alarm.category == "power" and alarm.family == "meter" and alarm.building is not None


def _outage_consequence(alarm: Alarm) -> bool:
    return (alarm.family in OUTAGE_FAMILIES and alarm.building is not None and alarm.grade >= 3
            and alarm.rule_id not in LIFE_SAFETY_RULES)


def _outages_of_building(child: Alarm) -> Select[tuple[Alarm]]:
    return select(Alarm).where(Alarm.site == child.site, Alarm.building == child.building,
                               Alarm.category == "power", Alarm.family == "meter", _active()).order_by(Alarm.id)


def _building_alarms(parent: Alarm) -> Select[tuple[Alarm]]:
    return select(Alarm).where(Alarm.site == parent.site, Alarm.building == parent.building,
                               Alarm.family.in_(OUTAGE_FAMILIES), _active()).order_by(Alarm.id)


POWER = Policy("power", _outage, _outage_consequence, _outages_of_building, _building_alarms)
POLICIES = (GATEWAY, POWER)


# --- the stage ------------------------------------------------------------------------------------

class Inhibitor:
    """The inhibit stage: suppresses, re-parents and restores alarms as parents come and go."""

    def __init__(self, policies: Sequence[Policy] = POLICIES) -> None:
        self._policies = tuple(policies)

    def __call__(self, session: Session, alarm: Alarm, change: ConditionChange, now: datetime) -> list[Alarm]:
        self._as_child(session, alarm, activation(alarm, change), now)
        if not any(p.is_parent(alarm) for p in self._policies):
            return []
        if _is_open_and_active(alarm):
            return self._adopt(session, alarm, now)
        return self._release(session, alarm, now)

    def find_parent(self, session: Session, child: Alarm, exclude: int | None = None) -> tuple[Alarm, Policy] | None:
        """The first active parent alarm of `child` under any policy, or None."""
        for policy in self._policies:
            if not policy.is_child(child):
                continue
            for candidate in session.scalars(policy.parent_candidates(child)):
                if candidate.id not in (child.id, exclude) and policy.is_parent(candidate) \
                        and candidate.suppressed_by != tag(child.id):
                    return candidate, policy
        return None

    def _as_child(self, session: Session, alarm: Alarm, activation: str | None, now: datetime) -> None:
        if is_inhibited(alarm):
            self._recheck(session, alarm, now)
        elif alarm.suppressed_by is None and _is_open_and_active(alarm):
            found = self.find_parent(session, alarm)
            if found is not None:
                _suppress(session, alarm, *found, activation, now)

    def _recheck(self, session: Session, alarm: Alarm, now: datetime) -> None:
        """A suppressed child changed: cleared → normal; no longer a child (escalated) → shown."""
        if not alarm.condition_active:
            _normalise(session, alarm, "cleared while suppressed by its parent", now)
            return
        parent = session.get(Alarm, alarm.parent_id) if alarm.parent_id is not None else None
        if parent is None or not any(p.is_parent(parent) and p.is_child(alarm) for p in self._policies):
            _unsuppress(session, alarm, "no longer a consequence of its parent (e.g. escalated)", now)

    def _adopt(self, session: Session, parent: Alarm, now: datetime) -> list[Alarm]:
        adopted = []
        for policy in self._policies:
            if not policy.is_parent(parent):
                continue
            for child in session.scalars(policy.child_candidates(parent)):
                if child.id != parent.id and child.suppressed_by is None and policy.is_child(child) \
                        and parent.suppressed_by != tag(child.id):
                    _suppress(session, child, parent, policy, None, now)
                    adopted.append(child)
        return adopted

    def _release(self, session: Session, parent: Alarm, now: datetime) -> list[Alarm]:
        query = select(Alarm).where(Alarm.parent_id == parent.id, Alarm.suppressed_by == tag(parent.id))
        children = list(session.scalars(query.order_by(Alarm.id)))
        for child in children:
            found = self.find_parent(session, child, exclude=parent.id)
            if found is not None:
                _suppress(session, child, *found, None, now)
            elif child.condition_active:
                _unsuppress(session, child, f"parent alarm {parent.id} cleared", now)
            else:
                _normalise(session, child, f"parent alarm {parent.id} cleared; the condition cleared meanwhile", now)
        return children


# --- changes to one child -------------------------------------------------------------------------

def _suppress(session: Session, child: Alarm, parent: Alarm, policy: Policy, activation: str | None,
              now: datetime) -> None:
    moved_from = child.parent_id if is_inhibited(child) else None
    child.parent_id, child.suppressed_by, child.updated_at = parent.id, tag(parent.id), now
    detail: dict[str, Any] = {"parent_id": parent.id, "policy": policy.name, "activation": activation}
    if moved_from is not None:
        detail["moved_from"] = moved_from
    reason = f"parent alarm {parent.id} ({parent.rule_id} on {parent.source}) is active"
    session.add(_audit(now, child, "alarm.suppressed", reason, detail))


def _unsuppress(session: Session, child: Alarm, reason: str, now: datetime) -> None:
    child.suppressed_by, child.updated_at = None, now
    session.add(_audit(now, child, "alarm.unsuppressed", reason, {"parent_id": child.parent_id, "state": child.state}))


def _normalise(session: Session, child: Alarm, reason: str, now: datetime) -> None:
    """Unsuppress a child whose condition is gone; unless latched it returns to normal unannounced."""
    before = child.state
    child.suppressed_by, child.updated_at = None, now
    if not child.latching and child.state == AlarmState.RTN_UNACK.value:
        child.state = AlarmState.NORMAL.value
    session.add(_audit(now, child, "alarm.normalised", reason,
                       {"parent_id": child.parent_id, "from": before, "to": child.state}))


def _audit(now: datetime, alarm: Alarm, action: str, reason: str, detail: dict[str, Any]) -> AuditEntry:
    return AuditEntry(at=now, actor=SYSTEM_ACTOR, action=action, entity_type="alarm", entity_id=str(alarm.id),
                      reason=reason, detail=detail)


def activation(alarm: Alarm, change: ConditionChange) -> str | None:
    """Whether this change annunciates the alarm: a new alarm (raise) or a re-activation (repeat)."""
    if change.kind is not ChangeKind.RAISE:
        return None
    return "repeat" if alarm.repeat_count else "raise"


def _is_open_and_active(alarm: Alarm) -> bool:
    return alarm.state != AlarmState.NORMAL.value and alarm.condition_active


# --- reading --------------------------------------------------------------------------------------

def tag(parent_id: int) -> str:
    """The `suppressed_by` value of an alarm hidden by the alarm `parent_id`."""
    return f"{TAG}{parent_id}"


def is_inhibited(alarm: Alarm) -> bool:
    """Hidden by a parent alarm now (not by maintenance or anything else)."""
    return alarm.suppressed_by is not None and alarm.suppressed_by.startswith(TAG)


def visible(suppressed: bool = False) -> ColumnElement[bool]:
    """Filter for alarm lists: `suppressed=false` (what the console shows) or only the suppressed."""
    if suppressed:
        return Alarm.suppressed_by.is_not(None) | Alarm.out_of_service.is_(True)
    return Alarm.suppressed_by.is_(None) & Alarm.out_of_service.is_(False)


def children_of(session: Session, alarm_id: int) -> list[Alarm]:
    """Every alarm `alarm_id` suppressed, now or earlier (restored children keep `parent_id`)."""
    return list(session.scalars(select(Alarm).where(Alarm.parent_id == alarm_id).order_by(Alarm.id)))


def linked_view(alarm: Alarm) -> dict[str, Any]:
    """`alarm_view` plus the links of alarm management: parent, incident, suppressed now."""
    return {**alarm_view(alarm), "parent_id": alarm.parent_id, "incident_id": alarm.incident_id,
            "suppressed": alarm.suppressed_by is not None}


def children_view(session: Session, alarm_id: int) -> list[dict[str, Any]]:
    """The `children` list of an alarm's detail: what it suppresses or suppressed."""
    return [linked_view(child) for child in children_of(session, alarm_id)]
