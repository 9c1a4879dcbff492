"""The notification config file (file:line errors) and the routing decisions made from it."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from alarms.notify.config import Delivery, TimeWindow, load_notify_config, parse_notify_config
from alarms.routing import Router
from core.domain import Grade
from core.yamlfile import YamlFileError

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "notify.yaml"
EXAMPLE_ENV = ["FMON_SMTP_PASSWORD", "FMON_LAKESIDE_WEBHOOK_SECRET", "FMON_LAKESIDE_DINGTALK_TOKEN",
               "FMON_LAKESIDE_DINGTALK_SECRET", "FMON_LAKESIDE_WECOM_KEY", "FMON_GAS_COMPANY_SECRET"]
SAT_16H = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)  # Saturday 16:00 in Asia/Shanghai

ROUTING = """
receivers:
  - {name: cr-day, channel: webhook, url: "http://h/day"}
  - {name: cr-night, channel: webhook, url: "http://h/night"}
  - {name: sup, channel: webhook, url: "http://h/sup"}
  - {name: pm, channel: webhook, url: "http://h/pm", quiet_hours: [{start: "22:00", end: "07:00"}]}
  - {name: lift-co, channel: webhook, url: "http://h/lift"}
  - {name: gas-co, channel: webhook, url: "http://h/gas"}
defaults:
  response: {3: 20m}
  max_renotify: 3
  roster:
    tier_1:
      - {receivers: [cr-day], start: "08:00", end: "20:00"}
      - {receivers: [cr-night], start: "20:00", end: "08:00"}
    tier_2: [{receivers: [sup], weekdays: [mon, tue, wed, thu, fri]}]
    tier_3: [{receivers: [pm]}]
sites:
  s2:
    timezone: Europe/Berlin
    response: {2: 2m}
    renotify_every: {2: 3m}
    roster:
      tier_1: [{receivers: [cr-day]}]
routes:
  - match: {category: [elevator]}
    receivers: [lift-co]
    continue: true
  - match: {category: [gas, elevator], grade: [1, 2]}
    receivers: [gas-co]
  - match: {category: [noise]}
    roster: false
"""


@pytest.fixture
def router() -> Router:
    return Router(parse_notify_config(ROUTING))


def problems(text: str) -> list[str]:
    with pytest.raises(YamlFileError) as caught:
        parse_notify_config(text, "notify.yaml")
    return list(caught.value.problems)


def test_the_shipped_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EXAMPLE_ENV:
        monkeypatch.setenv(name, f"value-of-{name}")
    config = load_notify_config(EXAMPLE)
    night = next(r for r in config.receivers if r.name == "lakeside-control-night")
    assert night.url is not None and night.url.endswith("access_token=value-of-FMON_LAKESIDE_DINGTALK_TOKEN")
    assert night.secret is not None and night.secret.get_secret_value() == "value-of-FMON_LAKESIDE_DINGTALK_SECRET"
    assert Router(config).response_clock("lakeside", Grade.GRADE_2).response == timedelta(minutes=3)


def test_a_missing_environment_variable_names_file_line_and_field(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EXAMPLE_ENV:
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("FMON_GAS_COMPANY_SECRET")
    with pytest.raises(YamlFileError) as caught:
        load_notify_config(EXAMPLE)
    [problem] = caught.value.problems
    assert problem.startswith(f"{EXAMPLE}:")
    assert problem.endswith("receivers[6].secret: environment variable FMON_GAS_COMPANY_SECRET is not set")


@pytest.mark.parametrize(("text", "expected"), [
    ("receivers:\n  - {name: a, channel: webhook}\n", "notify.yaml:2: receivers[0]: a webhook receiver needs a url"),
    ("receivers:\n  - name: a\n    channel: sms\n    url: http://x\n",
     "notify.yaml:3: receivers[0].channel: Input should be 'webhook', 'email', 'wecom' or 'dingtalk'"),
    ("receivers:\n  - {name: a, channel: email}\n", "notify.yaml:2: receivers[0]: an email receiver needs `to`"),
    ("receivers:\n  - {name: a, channel: wecom, url: 'http://x', secret: s}\n",
     "notify.yaml:2: receivers[0]: WeCom group robots are not signed"),
    ("receivers:\n  - {name: a, channel: webhook, url: 'ftp://x'}\n",
     "notify.yaml:2: receivers[0].url: url must start with http:// or https://"),
    ("defaults:\n  response: {2: 0s}\n", "notify.yaml:2: defaults.response: grade 2: the duration must be positive"),
    ("defaults:\n  timezone: Mars/Olympus\n", "notify.yaml:2: defaults.timezone: unknown time zone 'Mars/Olympus'"),
    ("sites:\n  s1:\n    roster:\n      tier_1:\n        - {receivers: [a], weekdays: [someday]}\n",
     "notify.yaml:5: sites.s1.roster.tier_1[0].weekdays[0]: invalid weekday 'someday'"),
    ("routes:\n  - match: {grade: [5]}\n", "notify.yaml:2: routes[0].match.grade[0]: Input should be 1, 2, 3 or 4"),
    ("delivery:\n  max_attempts: 0\n", "notify.yaml:2: delivery.max_attempts: Input should be greater than or equal"),
    ("colour: red\n", "notify.yaml:1: colour: Extra inputs are not permitted"),
])
def test_field_errors_name_file_line_and_field(text: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(text)), problems(text)


def test_grade_keyed_durations_are_checked() -> None:
    # Grades are integer keys; core.yamlfile maps lines of string keys only, so the line is the parent's.
    [problem] = problems("defaults:\n  renotify_every:\n    2: ten minutes\n")
    assert problem.startswith("notify.yaml:")
    assert "defaults.renotify_every[2]: invalid duration 'ten minutes'" in problem


def test_reference_errors_are_all_reported_with_their_lines() -> None:
    found = problems(
        "receivers:\n"
        "  - {name: a, channel: webhook, url: 'http://x'}\n"
        "  - {name: a, channel: email, to: [a@b.cn]}\n"
        "routes:\n"
        "  - receivers: [a, ghost]\n"
        "defaults:\n"
        "  roster:\n"
        "    tier_2:\n"
        "      - receivers: [phantom]\n"
    )
    assert found == [
        "notify.yaml:3: receivers[1].name: receiver 'a' is defined twice",
        "notify.yaml:3: receivers[1].channel: email receivers need the `smtp` section",
        "notify.yaml:5: routes[0].receivers[1]: unknown receiver 'ghost'",
        "notify.yaml:9: defaults.roster.tier_2[0].receivers[0]: unknown receiver 'phantom'",
    ]


def test_an_empty_file_is_an_empty_config() -> None:
    config = parse_notify_config("")
    assert (config.receivers, config.routes) == ((), ())


def test_time_windows_wrap_midnight_and_belong_to_the_day_they_start() -> None:
    night = TimeWindow(weekdays=(4,), start=time(22), end=time(7))  # Friday 22:00 → Saturday 07:00
    assert night.contains(datetime(2026, 11, 20, 23, 0))  # Friday 23:00
    assert night.contains(datetime(2026, 11, 21, 6, 59))  # Saturday 06:59
    assert not night.contains(datetime(2026, 11, 21, 7, 0))
    assert not night.contains(datetime(2026, 11, 21, 23, 0))  # Saturday night is not in it
    whole_day = TimeWindow.model_validate({"weekdays": ["sat"], "end": "24:00"})
    assert whole_day.contains(datetime(2026, 11, 21, 23, 59)) and not whole_day.contains(datetime(2026, 11, 22, 0, 0))


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    delivery = Delivery(backoff_initial=timedelta(seconds=30), backoff_max=timedelta(minutes=5), backoff_factor=2)
    assert [delivery.backoff(n).total_seconds() for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]


def test_clocks_fall_back_from_site_to_defaults_to_the_grade(router: Router) -> None:
    s1_grade_2, s1_grade_3 = router.response_clock("s1", Grade.GRADE_2), router.response_clock("s1", Grade.GRADE_3)
    assert (s1_grade_2.response, s1_grade_2.handling, s1_grade_2.renotify_every) == (
        timedelta(minutes=5), timedelta(minutes=30), timedelta(minutes=10))
    assert (s1_grade_3.response, s1_grade_3.handling, s1_grade_3.max_renotify) == (
        timedelta(minutes=20), timedelta(hours=4), 3)
    s2 = router.response_clock("s2", Grade.GRADE_2)
    assert (s2.response, s2.renotify_every, s2.timezone.key) == (timedelta(minutes=2), timedelta(minutes=3),
                                                                 "Europe/Berlin")
    assert router.timezone("s1").key == "Asia/Shanghai"


def test_routes_first_match_decides_and_continue_adds(router: Router) -> None:
    assert router.routes("s1", "elevator", Grade.GRADE_1) == router.routes("s1", "elevator", Grade.GRADE_2)
    assert router.routes("s1", "elevator", Grade.GRADE_1).receivers == ("lift-co", "gas-co")
    assert router.routes("s1", "elevator", Grade.GRADE_3).receivers == ("lift-co",)
    assert router.routes("s1", "gas", Grade.GRADE_3).receivers == ()
    noise = router.routes("s1", "noise", Grade.GRADE_4)
    assert (noise.receivers, noise.roster) == ((), False)
    assert router.routes("s1", "fire", Grade.GRADE_1).roster is True


def test_on_duty_follows_local_shifts_and_weekdays(router: Router) -> None:
    assert router.on_duty("s1", 1, SAT_16H) == ("cr-day",)
    assert router.on_duty("s1", 1, SAT_16H + timedelta(hours=4)) == ("cr-night",)  # 20:00 local
    assert router.on_duty("s1", 2, SAT_16H) == ()  # the supervisor works weekdays
    assert router.on_duty("s1", 2, SAT_16H + timedelta(days=2)) == ("sup",)  # Monday
    assert router.on_duty("s2", 1, SAT_16H + timedelta(hours=4)) == ("cr-day",)  # s2 has its own roster
    assert router.on_duty("s2", 3, SAT_16H) == ()
    with pytest.raises(ValueError, match="no tier 4"):
        router.on_duty("s1", 4, SAT_16H)


@pytest.mark.parametrize(("grade", "hour_utc", "muted"), [
    (Grade.GRADE_4, 15, True),  # 23:00 in Shanghai: quiet
    (Grade.GRADE_3, 22, True),  # 06:00
    (Grade.GRADE_4, 23, False),  # 07:00: quiet hours are over
    (Grade.GRADE_2, 15, False),  # emergencies are never silenced
    (Grade.GRADE_1, 15, False),
])
def test_quiet_hours_never_silence_grades_1_and_2(router: Router, grade: Grade, hour_utc: int, muted: bool) -> None:
    at = datetime(2026, 11, 21, hour_utc, 0, tzinfo=UTC)
    assert router.muted("pm", grade, at) is muted
    assert router.muted("sup", grade, at) is False  # no quiet hours
