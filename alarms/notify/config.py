"""The notification configuration file (notify.yaml), validated with `file:line` errors.

What it is for: reading the file people write — receivers, routes, the on-duty roster of each
site, response clocks and quiet hours — and refusing it with the line of every mistake.
Not for deciding who is told what, or when: that is `alarms.routing` and `alarms.escalation`.
The format is documented in docs/notifications.md; docs/examples/notify.yaml is a full example.

Secrets need not be written into the file: `${NAME}` in a url, secret, username or password is
replaced by the environment variable NAME when the file is loaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator

from core.domain import Grade
from core.yamlfile import YamlDocument, YamlFileError, parse_yaml, read_yaml, validate
from rules.model import Duration

DEFAULT_TIMEZONE = "Asia/Shanghai"
CHANNELS = ("webhook", "email", "wecom", "dingtalk")
TIERS = (1, 2, 3)  # 1 control room on duty, 2 supervisor, 3 project manager
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Channel = Literal["webhook", "email", "wecom", "dingtalk"]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")]
SiteId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _expand_env(value: object) -> object:
    """`${NAME}` → the environment variable NAME; an unset variable is an error naming it."""
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        name = match[1]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REF.sub(lookup, value)


def _zone(value: object) -> object:
    if isinstance(value, str):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
    return value


def _weekday(value: object) -> object:
    if isinstance(value, str) and value.strip().lower()[:3] in WEEKDAYS:
        return WEEKDAYS.index(value.strip().lower()[:3])
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    raise ValueError(f"invalid weekday {value!r}: use mon … sun (or 0 … 6, Monday = 0)")


def _end_of_day(value: object) -> object:
    return None if value in ("24:00", "24:00:00") else value


Env = Annotated[str, BeforeValidator(_expand_env)]
Secret = Annotated[SecretStr, BeforeValidator(_expand_env)]
Zone = Annotated[str, BeforeValidator(_zone)]
Weekday = Annotated[int, BeforeValidator(_weekday)]
EndTime = Annotated[time | None, BeforeValidator(_end_of_day)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class TimeWindow(_Frozen):
    """A local-time window on some weekdays. `start` ≥ `end` wraps past midnight (22:00–07:00);
    the weekday is the day the window starts. No times = the whole day."""

    weekdays: tuple[Weekday, ...] = (0, 1, 2, 3, 4, 5, 6)
    start: time = time(0, 0)
    end: EndTime = None  # None (or "24:00") = midnight at the end of the day

    def contains(self, local: datetime) -> bool:
        t, day = local.time().replace(tzinfo=None), local.weekday()
        if self.end is None:
            return day in self.weekdays and t >= self.start
        if self.start < self.end:
            return day in self.weekdays and self.start <= t < self.end
        if t >= self.start:
            return day in self.weekdays
        return (day - 1) % 7 in self.weekdays and t < self.end


class Receiver(_Frozen):
    """Somewhere notifications go: a webhook, mailboxes, a WeCom or DingTalk group robot."""

    name: Name
    channel: Channel
    url: Env | None = None
    to: tuple[str, ...] = ()
    secret: Secret | None = None
    timezone: Zone = DEFAULT_TIMEZONE
    quiet_hours: tuple[TimeWindow, ...] = ()
    send_resolved: bool = True
    description: str = ""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if _EMAIL.match(address) is None:
                raise ValueError(f"invalid email address {address!r}")
        return value

    @model_validator(mode="after")
    def _fields_of_channel(self) -> Receiver:
        if self.channel == "email":
            if not self.to:
                raise ValueError("an email receiver needs `to`: one or more addresses")
            if self.url is not None:
                raise ValueError("an email receiver has no url")
        elif self.url is None:
            raise ValueError(f"a {self.channel} receiver needs a url")
        if self.channel == "wecom" and self.secret is not None:
            raise ValueError("WeCom group robots are not signed: the key is in the url; remove `secret`")
        return self


class Match(_Frozen):
    """Which alarms a route applies to; an empty list matches anything."""

    site: tuple[SiteId, ...] = ()
    category: tuple[str, ...] = ()
    grade: tuple[Grade, ...] = ()

    def matches(self, site: str, category: str, grade: Grade) -> bool:
        return ((not self.site or site in self.site) and (not self.category or category in self.category)
                and (not self.grade or grade in self.grade))


class Route(_Frozen):
    """Alarms matching `match` also go to `receivers`. Routes are tried in order; the first
    match decides `roster`, and the search stops there unless the route says `continue: true`."""

    match: Match = Match()
    receivers: tuple[Name, ...] = ()
    roster: bool = True  # notify the site's on-duty roster (tier 1 at once, then escalation)
    continue_: bool = Field(default=False, alias="continue")


class Shift(TimeWindow):
    """Who is on duty in a tier during a window."""

    receivers: tuple[Name, ...] = Field(min_length=1)


class Roster(_Frozen):
    """The on-duty roster of a site: tier 1 control room, tier 2 supervisor, tier 3 project manager."""

    tier_1: tuple[Shift, ...] = ()
    tier_2: tuple[Shift, ...] = ()
    tier_3: tuple[Shift, ...] = ()

    def shifts(self, tier: int) -> tuple[Shift, ...]:
        return {1: self.tier_1, 2: self.tier_2, 3: self.tier_3}[tier]


GradeDurations = dict[Grade, Duration]


class SitePolicy(_Frozen):
    """Response clocks and roster of a site; unset fields fall back to `defaults`, then to the
    grade's defaults (DESIGN.md §4)."""

    timezone: Zone | None = None
    response: GradeDurations = {}
    handling: GradeDurations = {}
    renotify_every: GradeDurations = {}
    max_renotify: int | None = Field(default=None, ge=0, le=1000)
    roster: Roster | None = None

    @field_validator("response", "handling", "renotify_every")
    @classmethod
    def _positive(cls, value: GradeDurations) -> GradeDurations:
        for grade, duration in value.items():
            if duration <= timedelta(0):
                raise ValueError(f"grade {int(grade)}: the duration must be positive")
        return value


class Delivery(_Frozen):
    """How hard to try: attempts, exponential backoff between them, and the timeout of one."""

    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_initial: Duration = timedelta(seconds=30)
    backoff_max: Duration = timedelta(minutes=15)
    backoff_factor: float = Field(default=2.0, ge=1.0, le=10.0)
    timeout: Duration = timedelta(seconds=10)

    def backoff(self, failures: int) -> timedelta:
        """The wait after the `failures`-th failed attempt (1, 2, …)."""
        seconds = self.backoff_initial.total_seconds() * self.backoff_factor ** max(failures - 1, 0)
        return min(timedelta(seconds=seconds), self.backoff_max)


class Smtp(_Frozen):
    """The mail server email receivers are sent through."""

    host: str
    port: int = Field(default=25, ge=1, le=65535)
    sender: str
    username: Env | None = None
    password: Secret | None = None
    starttls: bool = False
    ssl: bool = False

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        if _EMAIL.match(value.rsplit("<", 1)[-1].rstrip(">")) is None:
            raise ValueError(f"invalid sender address {value!r}")
        return value


class NotifyConfig(_Frozen):
    """The whole notify.yaml."""

    version: Literal[1] = 1
    console_url: str | None = None
    smtp: Smtp | None = None
    delivery: Delivery = Delivery()
    defaults: SitePolicy = SitePolicy()
    sites: dict[SiteId, SitePolicy] = {}
    receivers: tuple[Receiver, ...] = ()
    routes: tuple[Route, ...] = ()


def load_notify_config(path: Path) -> NotifyConfig:
    """Read and validate a notify.yaml; raise `YamlFileError` naming each problem's line."""
    return _checked(read_yaml(path))


def parse_notify_config(text: str, source: str = "<notify.yaml>") -> NotifyConfig:
    """Like `load_notify_config`, from text (tests, the API's config check)."""
    return _checked(parse_yaml(text, source))


def _checked(doc: YamlDocument) -> NotifyConfig:
    if doc.data is None:
        return NotifyConfig()
    config = validate(doc, NotifyConfig)
    problems = [f"{doc.where(path)}: {message}" for path, message in _reference_problems(config)]
    if problems:
        raise YamlFileError(problems)
    return config


Problem = tuple[Sequence[str | int], str]  # (path into the document, message)


def _reference_problems(config: NotifyConfig) -> Iterator[Problem]:
    """Names that point nowhere, duplicate receivers, email without a mail server."""
    known: set[str] = set()
    for index, receiver in enumerate(config.receivers):
        if receiver.name in known:
            yield ("receivers", index, "name"), f"receiver {receiver.name!r} is defined twice"
        known.add(receiver.name)
        if receiver.channel == "email" and config.smtp is None:
            yield ("receivers", index, "channel"), "email receivers need the `smtp` section"
    for index, route in enumerate(config.routes):
        yield from _unknown(known, route.receivers, ("routes", index, "receivers"))
    policies: list[tuple[tuple[str | int, ...], SitePolicy]] = [(("defaults",), config.defaults)]
    policies += [(("sites", site), policy) for site, policy in config.sites.items()]
    for base, policy in policies:
        for tier in TIERS:
            for index, shift in enumerate(policy.roster.shifts(tier) if policy.roster else ()):
                yield from _unknown(known, shift.receivers, (*base, "roster", f"tier_{tier}", index, "receivers"))


def _unknown(known: set[str], names: Sequence[str], path: tuple[str | int, ...]) -> Iterator[Problem]:
    for index, name in enumerate(names):
        if name not in known:
            yield (*path, index), f"unknown receiver {name!r}"


def summary(config: NotifyConfig) -> dict[str, Any]:
    """A short description for the start-up log: how many receivers, routes and sites."""
    return {"receivers": len(config.receivers), "routes": len(config.routes), "sites": sorted(config.sites)}
