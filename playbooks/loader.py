"""Loading emergency playbooks from YAML files, validated, with errors naming file, line and field.

One file holds one playbook (the schema is `playbooks.model`); the shipped library is
`playbooks/library/`, one file per scenario, loaded by `default_playbooks()`. Problems read like
`playbooks/library/gas-leak.yaml:23: steps[1].deadline: invalid duration '5 minutes': …`.

Besides the schema, `read_playbooks` reports keys used by two files, and duplicate step ids and
`goto`s that do not name a later step at the line where they are written (the model rejects
them too, but only for the playbook as a whole). `check_playbooks` adds the lint (`lint_playbook`):
a step due before a step listed ahead of it. `select_playbook` picks the playbook an alarm opens.

Not here: incidents, step tracking and deadlines at run time (the incident runtime uses these
definitions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.yamlfile import YamlDocument, YamlFileError, read_yaml, validate
from playbooks.model import Playbook
from rules.loader import rule_files

LIBRARY = Path(__file__).resolve().parent / "library"

FieldPath = tuple[str | int, ...]
Lint = Callable[[Playbook], Iterable[tuple[FieldPath, str]]]  # (field path in the playbook, problem)


def playbook_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """The .yaml/.yml files among `paths` (directories searched recursively) and the paths that
    do not exist, as problems."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        try:
            files.extend(rule_files([path]))
        except YamlFileError as exc:
            problems.extend(exc.problems)
    return files, problems


def read_playbooks(paths: Iterable[Path], lint: Lint | None = None) -> tuple[list[Playbook], list[str]]:
    """The playbooks of the files in `paths` and every problem found: schema, step structure,
    duplicate keys across files, and `lint`'s."""
    files, problems = playbook_files(paths)
    playbooks: list[Playbook] = []
    first_seen: dict[str, str] = {}
    for path in files:
        try:
            doc = read_yaml(path)
        except YamlFileError as exc:
            problems.extend(exc.problems)
            continue
        playbook, found = _read_document(doc)
        problems.extend(found)
        if playbook is None:
            continue
        where = doc.where(("key",))
        if playbook.key in first_seen:
            problems.append(f"{where}: duplicate playbook key {playbook.key!r} (first in {first_seen[playbook.key]})")
        first_seen.setdefault(playbook.key, where)
        if lint is not None:
            problems.extend(f"{doc.where(at)}: {message}" for at, message in lint(playbook))
        playbooks.append(playbook)
    return playbooks, problems


def check_playbooks(paths: Iterable[Path]) -> tuple[list[Playbook], list[str]]:
    """`read_playbooks` with the lint: what `fmon playbooks check` reports."""
    return read_playbooks(paths, lint=lint_playbook)


def load_playbooks(paths: Iterable[Path]) -> list[Playbook]:
    """Every playbook in the files; all problems of all files are raised together."""
    playbooks, problems = read_playbooks(paths)
    if problems:
        raise YamlFileError(problems)
    return playbooks


def default_playbooks() -> list[Playbook]:
    """The library shipped in `playbooks/library/`."""
    return load_playbooks([LIBRARY])


def playbook_by_key(key: str, playbooks: Iterable[Playbook] | None = None) -> Playbook:
    for playbook in playbooks if playbooks is not None else default_playbooks():
        if playbook.key == key:
            return playbook
    raise KeyError(f"no playbook {key!r}")


def select_playbook(playbooks: Iterable[Playbook], category: str, grade: int,
                    rule_playbook: str | None = None) -> Playbook | None:
    """The playbook an alarm opens: the one keyed by the rule's `playbook` if there is one
    (whatever the grade), else the first whose triggers match (category, grade), else None."""
    candidates = list(playbooks)
    named = [p for p in candidates if rule_playbook is not None and p.key == rule_playbook]
    matching = [p for p in candidates if p.matches(category, int(grade))]
    return next(iter(named + matching), None)


def lint_playbook(playbook: Playbook) -> Iterator[tuple[FieldPath, str]]:
    """Steps due before a step listed ahead of them that applies to the same grade: the list is
    the order an operator works in, so its deadlines must not go back in time."""
    for index, step in enumerate(playbook.steps):
        for grade in range(1, 5):
            ahead = [s for s in playbook.steps[:index] if step.applies_to(grade) and s.applies_to(grade)]
            latest = max(ahead, key=lambda s: s.deadline, default=None)
            if latest is not None and latest.deadline > step.deadline:
                yield (("steps", index, "deadline"),
                       f"{format_deadline(step.deadline)} is earlier than the {format_deadline(latest.deadline)} "
                       f"of step {latest.id!r} listed ahead of it (grade {grade})")
                break


def format_deadline(value: timedelta) -> str:
    """A deadline as written in playbook files: 3m, 1h30m, 24h, 1m30s."""
    hours, rest = divmod(int(value.total_seconds()), 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + f"{seconds}s" if seconds or not text else text


def _read_document(doc: YamlDocument) -> tuple[Playbook | None, list[str]]:
    structure = _step_structure(doc)
    try:
        return validate(doc, Playbook), structure
    except YamlFileError as exc:
        # The model's own checks of the step structure report the playbook as a whole; the
        # located problems above say the same at the right line.
        whole = f"{doc.where(())}: "
        return None, [*structure, *(p for p in exc.problems if not (structure and p.startswith(whole)))]


def _step_structure(doc: YamlDocument) -> list[str]:
    """Duplicate step ids and `goto`s that do not name a later step, at their own lines."""
    steps = doc.data.get("steps") if isinstance(doc.data, dict) else None
    if not isinstance(steps, list):
        return []
    ids = [step.get("id") if isinstance(step, dict) else None for step in steps]
    problems: list[str] = []
    for index, step_id in enumerate(ids):
        if isinstance(step_id, str) and step_id in ids[:index]:
            problems.append(f"{doc.where(('steps', index, 'id'))}: duplicate step id {step_id!r} "
                            f"(first at steps[{ids.index(step_id)}])")
    for index, step in enumerate(steps):
        for number, option in enumerate(_options(step)):
            target = option.get("goto")
            if isinstance(target, str) and target not in ids[index + 1:]:
                why = "an earlier step" if target in ids[:index + 1] else "no step of this playbook"
                problems.append(f"{doc.where(('steps', index, 'options', number, 'goto'))}: {target!r} is {why}; "
                                "goto must name a later step")
    return problems


def _options(step: Any) -> list[dict[str, Any]]:
    options = step.get("options") if isinstance(step, dict) else None
    return [o for o in options if isinstance(o, dict)] if isinstance(options, list) else []
