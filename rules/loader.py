"""Loading rules from YAML files, validated, with errors naming file, line and field.

A rule file::

    rules:
      - id: gas.lel_l1
        family: gas
        condition: {kind: threshold, metric: lel_pct, op: ">=", limit: 25, deadband: 2}
        ...

`default_rules()` loads the library shipped in `rules/library/`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.yamlfile import YamlFileError, read_yaml, register_union_tags, validate
from rules.model import KINDS, Rule

LIBRARY = Path(__file__).resolve().parent / "library"
register_union_tags(*KINDS, "Compare", "AllOf", "AnyOf", "NotOf")


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    rules: tuple[Rule, ...] = ()


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """The .yaml/.yml files among `paths` (directories are searched recursively), sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            found.append(path)
        else:
            raise YamlFileError([f"{path}: no such file or directory"])
    return found


Lint = Callable[[Rule], Iterable[tuple[tuple[str | int, ...], str]]]  # (field path in the rule, problem)


def read_rules(files: Iterable[Path], lint: Lint | None = None) -> tuple[list[Rule], list[str]]:
    """The rules of `files` and every problem found (schema, duplicate ids, and `lint`'s)."""
    problems: list[str] = []
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in files:
        try:
            doc = read_yaml(path)
            loaded = validate(doc, RuleFile).rules
        except YamlFileError as exc:
            problems.extend(exc.problems)
            continue
        for index, rule in enumerate(loaded):
            where = doc.where(("rules", index, "id"))
            if rule.id in seen:
                problems.append(f"{where}: duplicate rule id {rule.id!r} (first in {seen[rule.id]})")
            seen.setdefault(rule.id, where)
            if lint is not None:
                problems.extend(f"{doc.where(('rules', index, *at))}: {message}" for at, message in lint(rule))
            rules.append(rule)
    return rules, problems


def load_rules(paths: Iterable[Path]) -> list[Rule]:
    """Every rule in the files; all problems of all files are reported together."""
    rules, problems = read_rules(rule_files(paths))
    if problems:
        raise YamlFileError(problems)
    return rules


def default_rules() -> list[Rule]:
    return load_rules([LIBRARY])


def rule_by_id(rule_id: str, rules: Iterable[Rule] | None = None) -> Rule:
    for rule in rules if rules is not None else default_rules():
        if rule.id == rule_id:
            return rule
    raise KeyError(f"no rule {rule_id!r}")
