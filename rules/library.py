"""The built-in rules. For now: indoor CO2 (GB/T 18883: CO2 ≤ 0.10 % = 1000 ppm)."""

from __future__ import annotations

from datetime import timedelta

from core.domain import Family, Grade
from rules.model import ThresholdRule

CO2_HIGH = ThresholdRule(
    id="env.co2_high",
    family=Family.ENV,
    metric="co2_ppm",
    op=">",
    limit=1000.0,
    deadband=50.0,
    on_delay=timedelta(seconds=60),
    grade=Grade.GRADE_4,
    category="air_quality",
    message_zh="{device} 二氧化碳浓度 {value:.0f} ppm，超过 {limit:.0f} ppm 限值（GB/T 18883），请加强通风",
    message_en="{device} CO2 at {value:.0f} ppm, above the {limit:.0f} ppm limit (GB/T 18883); increase ventilation",
)


def default_rules() -> list[ThresholdRule]:
    return [CO2_HIGH]
