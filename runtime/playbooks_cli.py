"""`fmon playbooks …`: check and show emergency playbooks. Wiring only: the work is in `playbooks/`
(docs/playbooks.md)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from core.yamlfile import YamlFileError
from playbooks.loader import LIBRARY, check_playbooks, format_deadline, load_playbooks, playbook_files
from playbooks.model import Playbook, Step, StepKind, Text, Trigger

LANGS = ("zh", "en")


@click.group()
def playbooks() -> None:
    """Emergency playbooks (YAML, bilingual): check and show them (docs/playbooks.md)."""


@playbooks.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def playbooks_check(paths: tuple[Path, ...]) -> None:
    """Validate playbook files (default: the shipped library); print every problem as
    FILE:LINE: FIELD: PROBLEM and exit 1 if there is any.

    Besides the schema: keys used twice, duplicate step ids, decision options that go to a step
    that is not later, and steps due before a step listed ahead of them.
    """
    roots = paths or (LIBRARY,)
    loaded, problems = check_playbooks(roots)
    for problem in problems:
        click.echo(problem, err=True)
    files, _missing = playbook_files(roots)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {len(files)} file(s)")
    if not files:
        raise click.ClickException("no playbook files (*.yaml, *.yml) found")
    click.echo(f"ok: {len(loaded)} playbook(s) in {len(files)} file(s)")
    rows = [(p.key, str(len(p.steps)), _triggers(p.triggers)) for p in loaded]
    for line in _table(("key", "steps", "triggers (category: grades)"), rows):
        click.echo(line)


@playbooks.command("show")
@click.argument("key")
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language of the texts.")
@click.option("--grade", type=click.IntRange(1, 4), help="Only the steps that apply to an incident of this grade.")
@click.option("--playbooks", "paths", multiple=True, type=click.Path(path_type=Path),
              help="Playbook files or directories (repeatable); default: the shipped library.")
def playbooks_show(key: str, lang: str, grade: int | None, paths: tuple[Path, ...]) -> None:
    """Print playbook KEY's steps as a table: role, deadline (from the incident start), title."""
    try:
        loaded = load_playbooks(paths or (LIBRARY,))
    except YamlFileError as exc:
        raise click.ClickException(f"cannot load the playbooks:\n{exc}") from None
    found = {p.key: p for p in loaded}
    if key not in found:
        raise click.BadParameter(f"no playbook {key!r}; there are: {', '.join(sorted(found))}", param_hint="KEY")
    for line in show_lines(found[key], lang, grade):
        click.echo(line)


def show_lines(playbook: Playbook, lang: str, grade: int | None = None) -> Iterator[str]:
    """The playbook as text: title, triggers and source, then one row per step with the options
    of decisions and the commands' expected read-back below it."""
    yield f"{playbook.key}: {_text(playbook.title, lang)}"
    yield f"triggers: {_triggers(playbook.triggers)}"
    yield f"source: {playbook.source}"
    yield ""
    steps = [(n, s) for n, s in enumerate(playbook.steps, 1) if grade is None or s.applies_to(grade)]
    rows = [(str(n), s.id, s.kind.value, _role(s, lang), format_deadline(s.deadline), _grades(s), _title(s, lang))
            for n, s in steps]
    header = ("#", "step", "kind", "role", "deadline", "grades", "title")
    lines = list(_table(header, rows))
    yield from lines[:1]
    indent = " " * (_width(lines[0]) - _width(header[-1]))
    for line, (_n, step) in zip(lines[1:], steps, strict=True):
        yield line
        yield from (indent + extra for extra in _extras(step, lang))


def _extras(step: Step, lang: str) -> Iterator[str]:
    for option in step.options:
        then = {"continue": "continue", "close": "close", "goto": f"goto {option.goto}"}[option.then]
        yield f"↳ {option.id}: {_text(option.label, lang)} → {then}"
    if step.kind is StepKind.COMMAND and step.command is not None:
        expect = ", ".join(f"{metric} = {_value(value)}" for metric, value in step.command.expect.items())
        yield f"↳ {step.command.name} ({step.command.target})" + (f" → {expect}" if expect else "")


def _value(value: str | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)  # as written in YAML


def _title(step: Step, lang: str) -> str:
    optional = {"zh": "（可选）", "en": " (optional)"}[lang]
    return _text(step.title, lang) + ("" if step.mandatory else optional)


def _role(step: Step, lang: str) -> str:
    return step.role.label_zh if lang == "zh" else step.role.label_en


def _grades(step: Step) -> str:
    return "all" if step.when_grades is None else ",".join(str(g) for g in step.when_grades)


def _triggers(triggers: Sequence[Trigger]) -> str:
    return "; ".join(f"{t.category}: {','.join(str(g) for g in t.grades)}" for t in triggers)


def _text(text: Text, lang: str) -> str:
    return text.zh if lang == "zh" else text.en


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Iterator[str]:
    """Columns padded by display width, so that Chinese text lines up in a terminal."""
    widths = [max(_width(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        yield "  ".join(cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)).rstrip()


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)
