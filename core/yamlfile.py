"""YAML files validated with pydantic, with errors that name the file, the line and the field.

Rule files, scenarios and playbooks are written by people; when one is wrong the message must
say where: `rules/gas.yaml:14: rules[2].on_delay: invalid duration '5 minutes'`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from core.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)
Path_ = tuple[str | int, ...]


class YamlFileError(ConfigError):
    """One or more problems in a YAML file; `problems` are `file:line: field: message` strings."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    source: str
    lines: Mapping[Path_, int]

    def where(self, path: Sequence[str | int]) -> str:
        """`file:line: field` for a path into the data (the nearest known line)."""
        probe = tuple(path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return f"{self.source}:{self.lines.get(probe, 1)}: {field_label(path)}"


def read_yaml(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlFileError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise YamlFileError([f"{path}: not UTF-8 text"]) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> YamlDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise YamlFileError([f"{source}{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _map_lines(node, (), lines)
    return YamlDocument(data, source, lines)


def validate(doc: YamlDocument, model: type[ModelT]) -> ModelT:
    """Validate the document as `model`; raise `YamlFileError` naming every problem's line."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise YamlFileError([f"{doc.where(data_path(doc.data, err['loc']))}: {_message(err)}"
                             for err in exc.errors()]) from None


def field_label(path: Sequence[str | int]) -> str:
    label = ""
    for part in path:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label or "(document)"


def data_path(data: Any, loc: Sequence[str | int]) -> Path_:
    """Pydantic's error location as a path into the data (skipping union-member tags)."""
    path: list[str | int] = []
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
            path.append(part)
        elif isinstance(current, dict) and isinstance(part, str) and "[" not in part and part not in _TAGS:
            path.append(part)  # a missing field: name it
            current = None
    return tuple(path)


# Discriminator tags pydantic puts into locations of tagged unions; not keys of the data.
_TAGS: set[str] = set()


def register_union_tags(*tags: str) -> None:
    """Tell the locator which location parts are union tags (e.g. rule kinds)."""
    _TAGS.update(tags)


def _map_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            _map_lines(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _map_lines(item, (*path, index), lines)


def _message(err: Mapping[str, Any]) -> str:
    return str(err["msg"]).removeprefix("Value error, ")
