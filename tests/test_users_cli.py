"""`fmon users add`: the account it makes signs in through the API; mistakes get a clear error
and exit code; its help names only options it has."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.clock import FakeClock
from core.settings import load_settings
from runtime.api_process import build_services
from runtime.cli import main, users_add
from storage.state.database import StateDatabase
from storage.state.models import AuditEntry, User

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The state database `fmon users add` writes to (FMON_DATABASE_URL), no other FMON_* set."""
    for name in list(os.environ):
        if name.upper().startswith("FMON_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("FMON_DATABASE_URL", url)
    monkeypatch.setenv("FMON_ENVIRONMENT", "development")
    return url


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    """The API on the same state database."""
    db = StateDatabase(database_url)
    db.upgrade()
    services = build_services(load_settings(environment="demo"), db, FakeClock(T0))
    with TestClient(create_app(services)) as client:
        yield client
    db.dispose()


def fmon(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


def sign_in(api: TestClient, user: str, password: str) -> tuple[int, str | None]:
    response = api.post("/api/v1/auth/token", data={"username": user, "password": password})
    return response.status_code, response.json().get("role")


def test_an_added_user_signs_in_with_its_role(database_url: str, api: TestClient) -> None:
    added = fmon("users", "add", "li.na", "--role", "operator", "--password-stdin", stdin="night-shift-7\n")
    assert (added.exit_code, added.output.strip()) == (0, "user li.na (operator) saved")
    assert sign_in(api, "li.na", "night-shift-7") == (200, "operator")
    assert sign_in(api, "li.na", "night-shift-8")[0] == 401
    db = StateDatabase(database_url)
    with db.session() as session:
        user = session.scalars(select(User).where(User.username == "li.na")).one()
        audit = session.scalars(select(AuditEntry).where(AuditEntry.entity_id == "li.na")).one()
    db.dispose()
    assert user.password_hash.startswith("$argon2id$")
    assert "night-shift-7" not in user.password_hash
    assert (audit.actor, audit.action, audit.detail) == ("cli", "user.set", {"role": "operator"})


def test_the_password_is_prompted_for_twice_without_options(api: TestClient) -> None:
    added = fmon("users", "add", "wang.fang", stdin="day-shift-77\nday-shift-77\n")
    assert added.exit_code == 0, added.output
    assert sign_in(api, "wang.fang", "day-shift-77") == (200, "viewer")  # the default role


def test_a_duplicate_is_refused_and_replace_resets_it(api: TestClient) -> None:
    assert fmon("users", "add", "chen", "--role", "viewer", "--password", "first-pass-1").exit_code == 0
    again = fmon("users", "add", "chen", "--role", "admin", "--password", "second-pass-2")
    assert again.exit_code == 1
    assert "Error: user 'chen' already exists; add --replace to reset its password and role" in again.output
    assert sign_in(api, "chen", "first-pass-1") == (200, "viewer")  # unchanged

    replaced = fmon("users", "add", "chen", "--role", "engineer", "--password-stdin", "--replace",
                    stdin="second-pass-2\n")
    assert replaced.exit_code == 0, replaced.output
    assert sign_in(api, "chen", "second-pass-2") == (200, "engineer")
    assert sign_in(api, "chen", "first-pass-1")[0] == 401


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (["zhao", "--role", "superuser", "--password", "long-enough-1"], None, "Invalid value for '--role'"),
        (["bad name!", "--password", "long-enough-1"], None, "Invalid value for USERNAME"),
        (["zhao", "--password", "short"], None, "passwords need at least 8 characters"),
        (["zhao", "--password-stdin"], "", "passwords need at least 8 characters"),
        (["zhao", "--password", "long-enough-1", "--password-stdin"], "long-enough-1\n",
         "give --password or --password-stdin, not both"),
    ],
)
def test_bad_input_is_a_usage_error_and_saves_nothing(api: TestClient, args: list[str], stdin: str | None,
                                                      says: str) -> None:
    result = fmon("users", "add", *args, stdin=stdin)
    assert result.exit_code == 2
    assert says in result.output
    assert "Traceback" not in result.output
    assert sign_in(api, "zhao", "long-enough-1")[0] == 401


def test_the_help_names_only_options_the_command_has() -> None:
    help_text = fmon("users", "add", "--help").output
    mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))
    real = {opt for param in users_add.params if isinstance(param, click.Option) for opt in param.opts}
    assert "--password-stdin" in mentioned
    assert mentioned <= real | {"--help"}
