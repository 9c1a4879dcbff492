"""Alarm events published after commit, and the JSON view of an alarm used by API and bus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.domain import Grade
from storage.state.models import Alarm


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """Something happened to an alarm: raised, repeated, cleared, updated."""

    event: str
    alarm: dict[str, Any]

    def as_message(self) -> dict[str, Any]:
        return {"type": "alarm", "event": self.event, "alarm": self.alarm}


def alarm_view(alarm: Alarm) -> dict[str, Any]:
    """The public JSON shape of an alarm."""
    grade = Grade(alarm.grade)
    return {
        "id": alarm.id,
        "rule_id": alarm.rule_id,
        "source": alarm.source,
        "site": alarm.site,
        "family": alarm.family,
        "device_id": alarm.device_id,
        "category": alarm.category,
        "grade": alarm.grade,
        "grade_label_zh": grade.label_zh,
        "grade_label_en": grade.label_en,
        "state": alarm.state,
        "message_zh": alarm.message_zh,
        "message_en": alarm.message_en,
        "value": alarm.value,
        "raised_at": _iso(alarm.raised_at),
        "cleared_at": _iso(alarm.cleared_at),
        "acked_at": _iso(alarm.acked_at),
        "acked_by": alarm.acked_by,
        "updated_at": _iso(alarm.updated_at),
        "repeat_count": alarm.repeat_count,
        "version": alarm.version,
        "building": alarm.building,
        "zone": alarm.zone,
        "latching": alarm.latching,
        "condition_active": alarm.condition_active,
        "shelved_until": _iso(alarm.shelved_until),
        "shelved_by": alarm.shelved_by,
        "shelve_reason": alarm.shelve_reason,
        "suppressed_by": alarm.suppressed_by,
        "out_of_service": alarm.out_of_service,
        "parent_id": alarm.parent_id,
        "incident_id": alarm.incident_id,
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
