"""The import-layering check (DESIGN.md §2) passes on the tree and fails on a violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["core", "storage", "ingest", "rules", "alarms", "playbooks", "maintenance", "api", "simulators", "runtime"]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def copy_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("static", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=tree, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=False)


def test_the_tree_keeps_its_layers(tmp_path: Path) -> None:
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("core/domain.py", "import storage.telemetry", "Layers flow one way"),
        ("rules/engine.py", "import alarms.service", "Layers flow one way"),
        ("simulators/site.py", "import ingest.decode", "Simulators talk to fmon only over MQTT"),
        ("api/app.py", "import simulators.site", "Only runtime may import simulators"),
    ],
)
def test_an_import_against_the_design_fails(tmp_path: Path, module: str, bad_import: str, contract: str) -> None:
    tree = copy_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + f"\n{bad_import}  # noqa\n")
    result = lint(tree)
    assert result.returncode != 0
    assert contract in result.stdout
    assert "BROKEN" in result.stdout
