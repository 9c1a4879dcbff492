"""The playbook schema: what a playbook YAML file may say, validated with pydantic.

A playbook is one emergency procedure as data (DESIGN.md §5), bilingual (zh-CN/en)::

    version: 1
    key: gas-leak
    title: {zh: 燃气泄漏应急处置, en: Gas leak response}
    source: 《物业应急预案》燃气泄漏; GB/T 50493-2019 §5
    triggers:
      - {category: gas, grades: [1, 2, 3]}
    steps:
      - id: close-valve
        kind: command
        role: control_room
        title: {zh: 关闭燃气切断阀, en: Close the gas shut-off valve}
        deadline: 2m
        when_grades: [1, 2]
        command: {name: close_valve, expect: {valve: closed}}
        source: GB/T 50493-2019 §5.4 (interlock)

Step kinds: `manual` (a person does it and marks it done), `notify` (call or tell someone: 119,
the gas company, the project manager), `command` (fmon publishes a device command, waits for the
ack and reads back the state; grades 1–2 need an operator's confirmation first), `decision`
(options that branch: continue, go to a step, or close the incident with a reason).

Deadlines are relative to the incident start. A step applies to an incident when its grade is in
`when_grades` (all grades if absent). The incident may close once every applicable mandatory
step is done or skipped with a reason (`closing.require`), or at once through a decision option
with `then: close` (e.g. a false alarm).
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rules.model import Duration

KEY = r"^[a-z][a-z0-9-]{0,63}$"
STEP_ID = r"^[a-z][a-z0-9-]{0,63}$"


class Role(StrEnum):
    """Who does a step. Internal roles of the property company, then external parties."""

    EMERGENCY_LEAD = "emergency_lead"  # 应急领导小组
    PROJECT_MANAGER = "project_manager"  # 项目经理
    CONTROL_ROOM = "control_room"  # 消控室值班
    SECURITY = "security"  # 秩序维护
    ENGINEERING = "engineering"  # 工程维修
    CUSTOMER_SERVICE = "customer_service"  # 客服
    CLEANING = "cleaning"  # 保洁
    FIRE_BRIGADE = "fire_brigade"  # 119
    POLICE = "police"  # 110
    AMBULANCE = "ambulance"  # 120
    LIFT_CONTRACTOR = "lift_contractor"  # 电梯维保单位
    GAS_COMPANY = "gas_company"  # 燃气公司
    POWER_UTILITY = "power_utility"  # 供电公司
    WATER_UTILITY = "water_utility"  # 供水公司
    HEALTH_AUTHORITY = "health_authority"  # 疾控/卫生部门

    @property
    def label_zh(self) -> str:
        return ROLE_LABELS[self][0]

    @property
    def label_en(self) -> str:
        return ROLE_LABELS[self][1]

    @property
    def external(self) -> bool:
        return self in EXTERNAL_ROLES


ROLE_LABELS: dict[Role, tuple[str, str]] = {
    Role.EMERGENCY_LEAD: ("应急领导小组", "Emergency lead"),
    Role.PROJECT_MANAGER: ("项目经理", "Project manager"),
    Role.CONTROL_ROOM: ("消控室值班", "Control-room duty"),
    Role.SECURITY: ("秩序维护", "Security"),
    Role.ENGINEERING: ("工程维修", "Engineering"),
    Role.CUSTOMER_SERVICE: ("客服", "Customer service"),
    Role.CLEANING: ("保洁", "Cleaning"),
    Role.FIRE_BRIGADE: ("消防救援 119", "Fire brigade 119"),
    Role.POLICE: ("公安 110", "Police 110"),
    Role.AMBULANCE: ("急救 120", "Ambulance 120"),
    Role.LIFT_CONTRACTOR: ("电梯维保单位", "Lift maintenance contractor"),
    Role.GAS_COMPANY: ("燃气公司", "Gas company"),
    Role.POWER_UTILITY: ("供电公司", "Power utility"),
    Role.WATER_UTILITY: ("供水公司", "Water utility"),
    Role.HEALTH_AUTHORITY: ("疾控/卫生部门", "Health authority"),
}
EXTERNAL_ROLES = frozenset({Role.FIRE_BRIGADE, Role.POLICE, Role.AMBULANCE, Role.LIFT_CONTRACTOR, Role.GAS_COMPANY,
                            Role.POWER_UTILITY, Role.WATER_UTILITY, Role.HEALTH_AUTHORITY})


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Frozen):
    """A text people read, in both languages."""

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


Grades = tuple[Annotated[int, Field(ge=1, le=4)], ...]


class Trigger(_Frozen):
    """Alarms that start this playbook: a category (the rule's) and grades; a rule may also
    name the playbook directly (`playbook:` in the rule file), which matches any grade listed."""

    category: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    grades: Grades = (1, 2, 3, 4)


class StepKind(StrEnum):
    MANUAL = "manual"
    NOTIFY = "notify"
    COMMAND = "command"
    DECISION = "decision"


class DeviceCommand(_Frozen):
    """A command to a device and the state that proves it worked.

    `target: source` commands the device of the alarm that started the incident; otherwise
    `family` (and optionally `kind`) picks the devices of that family in the incident's zone.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    params: dict[str, Any] = Field(default_factory=dict)
    target: Literal["source", "zone"] = "source"
    family: str | None = None
    expect: dict[str, str | float | bool] = Field(default_factory=dict)  # metric → value read back
    ack_timeout: Duration = timedelta(seconds=30)
    readback_timeout: Duration = timedelta(minutes=2)

    @model_validator(mode="after")
    def _zone_needs_family(self) -> DeviceCommand:
        if self.target == "zone" and self.family is None:
            raise ValueError("target 'zone' needs a family")
        return self


class Option(_Frozen):
    """A decision's answer: `continue` with the next step, `goto` a later step, or `close` the
    incident (the reason is then required from the operator)."""

    id: str = Field(pattern=STEP_ID)
    label: Text
    then: Literal["continue", "goto", "close"] = "continue"
    goto: str | None = None

    @model_validator(mode="after")
    def _goto_target(self) -> Option:
        if (self.then == "goto") != (self.goto is not None):
            raise ValueError("'goto' is given exactly when then is 'goto'")
        return self


class Step(_Frozen):
    id: str = Field(pattern=STEP_ID)
    kind: StepKind = StepKind.MANUAL
    role: Role
    title: Text
    detail: Text | None = None
    deadline: Duration  # from the incident start
    mandatory: bool = True
    when_grades: Grades | None = None
    source: str = Field(min_length=1)  # the seed section or standard the step comes from
    command: DeviceCommand | None = None
    options: tuple[Option, ...] = ()

    @model_validator(mode="after")
    def _kind_fields(self) -> Step:
        if (self.kind is StepKind.COMMAND) != (self.command is not None):
            raise ValueError("'command' is given exactly when kind is 'command'")
        if (self.kind is StepKind.DECISION) != bool(self.options):
            raise ValueError("'options' are given exactly when kind is 'decision'")
        return self

    def applies_to(self, grade: int) -> bool:
        return self.when_grades is None or grade in self.when_grades


class Closing(_Frozen):
    require: Literal["mandatory", "all"] = "mandatory"
    report: bool = True


class Playbook(_Frozen):
    version: Literal[1] = 1
    key: str = Field(pattern=KEY)
    title: Text
    summary: Text | None = None
    source: str = Field(min_length=1)
    triggers: tuple[Trigger, ...] = Field(min_length=1)
    steps: tuple[Step, ...] = Field(min_length=1)
    closing: Closing = Closing()

    @model_validator(mode="after")
    def _consistent_steps(self) -> Playbook:
        ids = [step.id for step in self.steps]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate step ids: {', '.join(duplicates)}")
        for index, step in enumerate(self.steps):
            for option in step.options:
                if option.goto is not None and option.goto not in ids[index + 1:]:
                    raise ValueError(f"step {step.id!r}: option {option.id!r} goes to {option.goto!r}, "
                                     "which is not a later step")
        return self

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def matches(self, category: str, grade: int) -> bool:
        return any(t.category == category and grade in t.grades for t in self.triggers)
