"""The emergency playbook library and its loader: the shipped files validate and cover every rule,
key steps carry their cited time limits, broken files are reported by file, line and field,
`select_playbook` picks the right playbook, and `fmon playbooks check/show` work."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.yamlfile import YamlFileError
from playbooks.loader import (
    LIBRARY,
    check_playbooks,
    default_playbooks,
    format_deadline,
    load_playbooks,
    playbook_by_key,
    read_playbooks,
    select_playbook,
)
from playbooks.model import Playbook, Role, StepKind
from rules.loader import default_rules
from runtime.playbooks_cli import playbooks as playbooks_cli

SCENARIOS = {"fire", "elevator-entrapment", "gas-leak", "power-outage", "water-outage", "comms-failure",
             "extreme-weather", "air-quality", "equipment-failure"}


@pytest.fixture(scope="module")
def library() -> list[Playbook]:
    return default_playbooks()


def by_key(playbooks: list[Playbook], key: str) -> Playbook:
    return next(p for p in playbooks if p.key == key)


# --- the shipped library ------------------------------------------------------------------------------

def test_every_library_file_validates_and_passes_the_lint() -> None:
    files = sorted(LIBRARY.glob("*.yaml"))
    assert len(files) == len(SCENARIOS)
    for path in files:
        loaded, problems = check_playbooks([path])
        assert problems == []
        assert [p.key for p in loaded] == [path.stem]  # one playbook per file, named by its key


def test_the_library_holds_one_playbook_per_scenario(library: list[Playbook]) -> None:
    assert sorted(p.key for p in library) == sorted(SCENARIOS)
    assert playbook_by_key("gas-leak", library).title.en == "Gas leak response"
    with pytest.raises(KeyError, match="no-such"):
        playbook_by_key("no-such", library)


def test_every_rule_names_a_playbook_of_the_library_and_opens_it(library: list[Playbook]) -> None:
    for rule in default_rules():
        chosen = select_playbook(library, rule.category, rule.grade, rule.playbook)
        assert chosen is not None and chosen.key == rule.playbook, rule.id


def test_every_rule_category_is_covered_by_exactly_one_trigger_for_every_grade(library: list[Playbook]) -> None:
    """Without its rule's playbook key an alarm still finds a playbook, and only one: the result
    does not depend on the order of the files."""
    categories = {rule.category for rule in default_rules()}
    assert {"fire", "gas", "elevator", "power", "comms", "noise", "tamper", "energy"} <= categories
    for category in sorted(categories):
        for grade in (1, 2, 3, 4):
            matching = [p.key for p in library if p.matches(category, grade)]
            assert len(matching) == 1, (category, grade, matching)


def test_every_playbook_has_a_first_response_within_the_seed_time_limits(library: list[Playbook]) -> None:
    """Seed 000 客户服务管理流程: emergencies (grades 1-2) respond within 5 min, general (3-4) within 15 min;
    every step names its source."""
    limits = {1: timedelta(minutes=5), 2: timedelta(minutes=5), 3: timedelta(minutes=15), 4: timedelta(minutes=15)}
    for playbook in library:
        for grade, limit in limits.items():
            first = min(s.deadline for s in playbook.steps if s.applies_to(grade))
            assert first <= limit, (playbook.key, grade, first)
        assert all(s.source.strip() for s in playbook.steps)


def test_gas_leak_level_2_closes_the_valve_and_starts_the_fan_with_read_back(library: list[Playbook]) -> None:
    gas = by_key(library, "gas-leak")
    for grade in (1, 2):
        commands = {s.command.name: s for s in gas.steps
                    if s.applies_to(grade) and s.kind is StepKind.COMMAND and s.command is not None}
        close = commands["close_valve"]
        assert close.command is not None
        assert (close.command.target, close.command.expect) == ("source", {"valve": "closed"})
        assert close.deadline <= timedelta(minutes=5) and close.mandatory
        fan = commands["start_fan"].command
        assert fan is not None and fan.expect == {"fan": True}
    # level 1 (grades 3-4) ventilates and inspects: no valve closing
    assert not any(s.command is not None and s.command.name == "close_valve" for s in gas.steps if s.applies_to(3))


def test_gas_is_reopened_only_after_a_re_test(library: list[Playbook]) -> None:
    gas = by_key(library, "gas-leak")
    ids = [s.id for s in gas.steps]
    reopen = next(s for s in gas.steps if s.command is not None and s.command.name == "open_valve")
    assert reopen.command is not None and reopen.command.expect == {"valve": "open"}
    assert ids.index("retest") < ids.index("reopen") < ids.index(reopen.id)
    keep_closed = next(o for o in gas.step("reopen").options if o.then == "goto")
    assert ids.index(keep_closed.goto or "") > ids.index(reopen.id)  # keeping it closed skips the reopening


def test_fire_confirms_first_and_has_the_micro_station_on_scene_within_3_minutes(library: list[Playbook]) -> None:
    fire = by_key(library, "fire")
    confirm = fire.steps[0]
    assert confirm.kind is StepKind.DECISION and {o.then for o in confirm.options} == {"continue", "close"}
    micro = next(s for s in fire.steps if "微型消防站" in s.title.zh)
    assert micro.deadline == timedelta(minutes=3) and micro.when_grades is None and micro.mandatory
    assert "[F4]" in micro.source
    ids = [s.id for s in fire.steps]
    assert ids.index("confirm") < ids.index("call-119") < ids.index(micro.id)
    evacuate = fire.step("evacuate")
    assert "禁止乘电梯" in evacuate.title.zh and "never the elevators" in evacuate.title.en


def test_entrapment_contractor_arrives_within_30_minutes_and_alone_releases(library: list[Playbook]) -> None:
    lift = by_key(library, "elevator-entrapment")
    assert lift.steps[0].role is Role.CONTROL_ROOM  # voice contact comes first
    arrival = lift.step("contractor-on-site")
    assert (arrival.role, arrival.deadline) == (Role.LIFT_CONTRACTOR, timedelta(minutes=30))
    assert lift.step("release").role is Role.LIFT_CONTRACTOR
    ids = [s.id for s in lift.steps]
    assert ids.index("release") < ids.index("out-of-service")


# --- problems in playbook files -----------------------------------------------------------------------

VALID = """\
version: 1
key: test
title: {zh: 测试, en: Test}
source: test
triggers:
  - {category: gas, grades: [1, 2]}
steps:
  - id: first
    role: control_room
    title: {zh: 第一步, en: First}
    deadline: 5m
    source: test
  - id: second
    kind: decision
    role: engineering
    title: {zh: 第二步, en: Second}
    deadline: 10m
    source: test
    options:
      - {id: go-on, label: {zh: 继续, en: Go on}}
      - {id: skip, label: {zh: 跳过, en: Skip}, then: goto, goto: third}
  - id: third
    role: security
    title: {zh: 第三步, en: Third}
    deadline: 15m
    source: test
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    _loaded, problems = check_playbooks([write(tmp_path / "p.yaml", text)])
    return problems


def test_a_valid_playbook_has_no_problems(tmp_path: Path) -> None:
    assert problems_of(tmp_path, VALID) == []


@pytest.mark.parametrize(("old", "new", "prefix"), [
    ("role: security", "role: janitor", ":23: steps[2].role: Input should be"),
    ("deadline: 10m", "deadline: 5 minutes", ":17: steps[1].deadline: invalid duration '5 minutes'"),
    ("title: {zh: 第一步, en: First}", "title: {en: First}", ":10: steps[0].title.zh: Field required"),
    ("  - id: first\n    role", "  - id: first\n    kind: command\n    role",
     ":8: steps[0]: 'command' is given exactly when kind is 'command'"),
])
def test_schema_problems_name_file_line_and_field(tmp_path: Path, old: str, new: str, prefix: str) -> None:
    assert old in VALID
    problems = problems_of(tmp_path, VALID.replace(old, new))
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'p.yaml'}{prefix}")


def test_a_goto_to_an_earlier_step_is_reported_at_the_goto(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, VALID.replace("goto: third", "goto: first"))
    assert problems == [f"{tmp_path / 'p.yaml'}:21: steps[1].options[1].goto: 'first' is an earlier step; "
                        "goto must name a later step"]


def test_a_duplicate_step_id_is_reported_at_the_second_id(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, VALID.replace("id: third", "id: first").replace("goto: third", "goto: first"))
    # once, where it is written; not again for the playbook as a whole
    assert problems == [f"{tmp_path / 'p.yaml'}:22: steps[2].id: duplicate step id 'first' (first at steps[0])"]


def test_a_deadline_before_an_earlier_step_is_a_lint_problem_not_a_load_error(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", VALID.replace("deadline: 15m", "deadline: 2m"))
    _loaded, problems = check_playbooks([path])
    assert problems == [f"{path}:25: steps[2].deadline: 2m is earlier than the 10m of step 'second' "
                        "listed ahead of it (grade 1)"]
    assert [p.key for p in load_playbooks([path])] == ["test"]


def test_steps_for_other_grades_do_not_count_for_the_deadline_order(tmp_path: Path) -> None:
    text = VALID.replace("deadline: 10m", "deadline: 4h\n    when_grades: [3, 4]").replace(
        "deadline: 15m", "deadline: 15m\n    when_grades: [1, 2]")
    assert problems_of(tmp_path, text) == []


def test_duplicate_keys_across_files_and_missing_paths_are_reported(tmp_path: Path) -> None:
    a, b = write(tmp_path / "a.yaml", VALID), write(tmp_path / "b.yaml", VALID)
    loaded, problems = read_playbooks([tmp_path, tmp_path / "missing"])
    assert len(loaded) == 2
    assert problems == [f"{tmp_path / 'missing'}: no such file or directory",
                        f"{b}:2: key: duplicate playbook key 'test' (first in {a}:2: key)"]


def test_load_playbooks_raises_every_problem_of_every_file(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", VALID.replace("role: security", "role: janitor"))
    write(tmp_path / "b.yaml", "key: [unclosed\n")
    with pytest.raises(YamlFileError) as caught:
        load_playbooks([tmp_path])
    assert [p.split(":")[0] for p in caught.value.problems] == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]


def test_deadlines_are_formatted_as_they_are_written() -> None:
    assert [format_deadline(timedelta(seconds=s)) for s in (0, 90, 180, 5400, 86400)] == [
        "0s", "1m30s", "3m", "1h30m", "24h"]


# --- selecting a playbook -----------------------------------------------------------------------------

def playbook(key: str, category: str, grades: list[int]) -> Playbook:
    return Playbook.model_validate({
        "key": key, "title": {"zh": key, "en": key}, "source": "test",
        "triggers": [{"category": category, "grades": grades}],
        "steps": [{"id": "only", "role": "control_room", "title": {"zh": "步", "en": "Step"},
                   "deadline": "5m", "source": "test"}],
    })


def test_the_rules_playbook_key_wins_over_the_triggers_whatever_the_grade() -> None:
    books = [playbook("a", "gas", [1, 2]), playbook("b", "fire", [1])]
    assert select_playbook(books, "gas", 1, "b") is books[1]
    assert select_playbook(books, "noise", 4, "b") is books[1]


def test_without_a_known_key_the_first_matching_trigger_wins() -> None:
    books = [playbook("a", "gas", [1, 2]), playbook("b", "gas", [2, 3])]
    assert select_playbook(books, "gas", 2, "unknown") is books[0]
    assert select_playbook(books, "gas", 3, None) is books[1]
    assert select_playbook(books, "gas", 4, None) is None
    assert select_playbook(books, "fire", 1, None) is None


def test_the_library_sends_grade_3_elevator_alarms_without_a_key_to_equipment_failure(
        library: list[Playbook]) -> None:
    assert getattr(select_playbook(library, "elevator", 2, "no-such-playbook"), "key", None) == "elevator-entrapment"
    assert getattr(select_playbook(library, "elevator", 3, None), "key", None) == "equipment-failure"
    assert getattr(select_playbook(library, "elevator", 3, "elevator-entrapment"), "key", None) == \
        "elevator-entrapment"


# --- fmon playbooks check / show ----------------------------------------------------------------------

def cli(*args: str) -> Result:
    return CliRunner().invoke(playbooks_cli, list(args), prog_name="fmon playbooks")


def test_check_passes_on_the_library() -> None:
    result = cli("check")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"ok: {len(SCENARIOS)} playbook(s) in {len(SCENARIOS)} file(s)"
    assert any(line.startswith("gas-leak ") and "gas: 1,2,3,4" in line for line in result.stdout.splitlines())


def test_check_fails_with_the_problems_on_stderr(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", VALID.replace("deadline: 10m", "deadline: 5 minutes"))
    result = cli("check", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:17: steps[1].deadline: invalid duration '5 minutes'")
    assert "1 problem(s) in 1 file(s)" in result.stderr
    assert result.stdout == ""


def test_check_fails_when_there_are_no_files(tmp_path: Path) -> None:
    result = cli("check", str(tmp_path))
    assert result.exit_code == 1
    assert "no playbook files" in result.stderr


def test_show_prints_the_steps_as_a_table_in_either_language() -> None:
    zh = cli("show", "fire")
    assert zh.exit_code == 0, zh.output
    lines = zh.stdout.splitlines()
    assert lines[0] == "fire: 火灾应急处置"
    header = next(line for line in lines if line.startswith("#"))
    assert header.split() == ["#", "step", "kind", "role", "deadline", "grades", "title"]
    micro = next(line for line in lines if " micro-station " in line)
    assert micro.split()[1:6] == ["micro-station", "manual", "秩序维护", "3m", "all"]
    assert "微型消防站" in micro
    assert any("false-alarm" in line and "→ close" in line for line in lines)  # the decision's options
    en = cli("show", "fire", "--lang", "en")
    assert "Micro fire station on scene within 3 minutes" in en.stdout and "Security" in en.stdout
    assert "微型消防站" not in en.stdout


def test_show_filters_by_grade_and_shows_command_read_back() -> None:
    level2 = cli("show", "gas-leak", "--grade", "1", "--lang", "en").stdout
    assert " close-valve " in level2 and "close_valve (source) → valve = closed" in level2
    assert "start_fan (source) → fan = true" in level2
    level1 = cli("show", "gas-leak", "--grade", "3").stdout
    assert " close-valve " not in level1 and " inspect " in level1


def test_show_reads_other_files_and_rejects_an_unknown_key(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", VALID)
    result = cli("show", "test", "--playbooks", str(tmp_path), "--lang", "en")
    assert result.exit_code == 0, result.output
    assert "goto third" in result.stdout
    unknown = cli("show", "no-such")
    assert unknown.exit_code == 2
    assert "no playbook 'no-such'" in unknown.stderr and "gas-leak" in unknown.stderr
