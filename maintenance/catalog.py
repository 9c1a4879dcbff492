"""The vocabularies of the equipment ledger: equipment types, skills, intervals, statuses, priorities.

Every user-facing label is bilingual (zh-CN, en). The ledger validates against these, the plans
and the scheduler read their defaults (skill, duration of an unplanned job) from here.
Not for: plan contents (`maintenance.plans`) or work-order rules (`maintenance.workorders`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EquipmentType:
    """A kind of equipment: its names, the skill its work needs, how long an inspection takes."""

    key: str
    name_zh: str
    name_en: str
    skill: str
    inspect_min: int  # default estimate of a corrective or predictive job on it


def _types(*rows: tuple[str, str, str, str, int]) -> dict[str, EquipmentType]:
    return {key: EquipmentType(key, zh, en, skill, minutes) for key, zh, en, skill, minutes in rows}


EQUIPMENT_TYPES: dict[str, EquipmentType] = _types(
    ("elevator", "电梯", "Elevator", "elevator", 120),
    ("escalator", "自动扶梯", "Escalator", "elevator", 120),
    ("pump", "水泵(生活给水/排水)", "Pump (water supply, drainage)", "plumbing", 90),
    ("fire_pump", "消防水泵", "Fire pump", "fire", 90),
    ("fan", "风机(排风/排烟/送风)", "Fan (exhaust, smoke, supply)", "hvac", 60),
    ("chiller", "冷水机组", "Chiller", "hvac", 180),
    ("boiler", "锅炉", "Boiler", "hvac", 180),
    ("heat_exchanger", "换热站/换热器", "Heat exchange station", "hvac", 120),
    ("ahu", "空调机组", "Air handling unit", "hvac", 90),
    ("transformer", "变压器", "Transformer", "electrical", 120),
    ("switchgear", "高低压配电柜", "Switchgear", "electrical", 90),
    ("generator", "柴油发电机组", "Diesel generator", "electrical", 90),
    ("fire_panel", "火灾报警控制器", "Fire alarm control panel", "fire", 60),
    ("sprinkler", "自动喷水灭火系统", "Sprinkler system", "fire", 120),
    ("water_tank", "生活水箱/水池", "Water tank", "plumbing", 240),
    ("meter", "计量表", "Meter", "electrical", 30),
    ("gas_detection", "可燃气体探测系统", "Gas detection system", "fire", 60),
    ("other", "其他设备", "Other equipment", "general", 60),
)

SKILLS: dict[str, tuple[str, str]] = {
    "elevator": ("电梯", "elevator"),
    "electrical": ("强电", "electrical"),
    "plumbing": ("给排水", "plumbing"),
    "hvac": ("暖通空调", "HVAC"),
    "fire": ("消防", "fire systems"),
    "general": ("综合维修", "general"),
}

INTERVALS: dict[str, tuple[str, str]] = {
    "half_monthly": ("半月", "half-monthly"),
    "monthly": ("月度", "monthly"),
    "quarterly": ("季度", "quarterly"),
    "half_yearly": ("半年", "half-yearly"),
    "annual": ("年度", "annual"),
}

EQUIPMENT_STATUSES: dict[str, tuple[str, str]] = {
    "in_service": ("在用", "in service"),
    "standby": ("备用", "standby"),
    "out_of_service": ("停用", "out of service"),
    "retired": ("报废", "retired"),
}
PLANNED_STATUSES = ("in_service", "standby")  # equipment that gets planned maintenance

PRIORITIES: dict[str, tuple[str, str]] = {
    "urgent": ("紧急", "urgent"),
    "high": ("高", "high"),
    "normal": ("普通", "normal"),
    "low": ("低", "low"),
}


def priority_rank(priority: str) -> int:
    """0 for urgent … 3 for low; unknown priorities sort last."""
    keys = list(PRIORITIES)
    return keys.index(priority) if priority in keys else len(keys)
