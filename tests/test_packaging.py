"""What an installed fmon carries: the wheel holds every data file its packages read at run time.

The development venv is editable, so a file read from outside the packages (docs/, the
repository root) works there and fails in the Docker image, which installs the wheel. These
tests build the wheel the way the image does (hatchling, through `uv build`), check that every
non-Python file of the packages is inside, and seed a demo database from the unpacked wheel alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.harness.policy import in_ci

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "storage", "ingest", "rules", "alarms", "playbooks", "maintenance", "api", "simulators",
            "runtime")
DEMO_DATA = ROOT / "runtime" / "demo_data"
DOCS_EXAMPLES = ROOT / "docs" / "examples"


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not os.access(found, os.X_OK):  # scripts/test installs it into .venv
        message = "uv not found (needed to build the wheel): .venv/bin/python -m pip install uv"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fmon's wheel, built from this tree (offline from uv's cache when it can, else from the index)."""
    out = tmp_path_factory.mktemp("wheel")
    command = [_uv(), "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)]
    built = subprocess.run([*command, "--offline"], capture_output=True, text=True, timeout=300, check=False)
    if built.returncode != 0:  # hatchling not in uv's cache yet: fetch it
        built = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, f"uv build failed:\n{built.stderr}"
    [path] = out.glob("fmon-*.whl")
    return path


def package_data_files() -> list[str]:
    """Every non-Python file in the import packages, as a path inside the wheel."""
    files = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".py", ".pyc"):
                files.append(path.relative_to(ROOT).as_posix())
    return sorted(files)


def test_the_wheel_holds_every_data_file_of_the_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = package_data_files()
    # the ones the code is known to read, so that the check cannot pass on an empty list
    assert {"runtime/demo_data/inventory.yaml", "runtime/demo_data/equipment.csv",
            "runtime/demo_data/technicians.csv", "rules/library/env.yaml", "playbooks/library/fire.yaml",
            "playbooks/templates/report.md.j2", "api/static/index.html",
            "storage/migrations/script.py.mako"} <= set(expected)
    assert [name for name in expected if name not in names] == []
    assert "storage/migrations/env.py" in names


def test_the_demo_seeds_from_an_installed_wheel_alone(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from sqlalchemy import func, select
        import runtime.demo as demo
        from storage.state.database import StateDatabase
        from storage.state.equipment_models import Equipment
        from storage.state.registry import RegistryStore
        from core.clock import SystemClock

        assert Path(demo.__file__).is_relative_to(sys.argv[1]), demo.__file__
        db = StateDatabase(f"sqlite:///{sys.argv[2]}")
        db.upgrade()
        demo.seed_demo_data(db, SystemClock().now())
        with db.session() as session:
            equipment = session.scalar(select(func.count()).select_from(Equipment))
        print(len(RegistryStore(db).sites()), equipment)
        db.dispose()
    """)
    # Outside the repository, with only the unpacked wheel ahead of the venv's dependencies
    # (the venv's editable fmon comes after PYTHONPATH, and the check above names the file used).
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run([sys.executable, "-c", script, str(site), str(tmp_path / "state.db")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    sites, equipment = map(int, run.stdout.split())
    assert sites >= 1
    assert equipment >= 10


@pytest.mark.parametrize("name", sorted(p.name for p in DEMO_DATA.iterdir()))
def test_docs_examples_are_the_packaged_demo_data(name: str) -> None:
    # The docs keep a copy for readers (`fmon inventory import docs/examples/inventory.yaml`).
    assert (DOCS_EXAMPLES / name).read_bytes() == (DEMO_DATA / name).read_bytes(), (
        f"docs/examples/{name} differs from runtime/demo_data/{name} (the copy the demo ships): "
        f"edit runtime/demo_data/{name} and copy it to docs/examples/")
