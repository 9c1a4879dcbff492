"""docker-compose.yml, the Dockerfile, .env.example and the broker config against the code they deploy.

There is no Docker engine on these machines (DESIGN.md §7), so nothing here runs a container.
The compose file is parsed with PyYAML and its `${VAR}` references are interpolated the way
compose does, from .env.example with every secret filled in. Then each fmon service's command
line goes through the real click CLI (`runtime.cli.main`, callbacks stubbed) and its `FMON_*`
environment through the real settings (`core.settings.load_settings`), so the deployment
fails here as soon as it drifts from the CLI or the settings. The shipped mosquitto.conf and
ACL run on a real Mosquitto.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import click
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from core.broker import BrokerAddress
from core.domain import validate_id
from core.errors import ConfigError
from core.settings import CONFIG_FILE_ENV, Settings, load_settings
from core.topics import ALARM_EVENTS_TOPIC
from runtime.cli import main
from tests.harness import MosquittoServer, ServiceUnavailable, free_port
from tests.harness.binaries import find_binary
from tests.harness.policy import service_unavailable

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
MOSQUITTO_DIR = ROOT / "deploy" / "mosquitto"

SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY")
# `$$` (a literal $), `${NAME[op arg]}` or `$NAME`, as compose reads them.
VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?", re.DOTALL)
URL_USERINFO_BEFORE = re.compile(r"://[^/@\s]*:$")  # text ending in "scheme://user:" precedes a password
HEALTHZ_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/healthz")


# --- Reading the files -----------------------------------------------------------------------


@dataclass(frozen=True)
class VariableRef:
    """One `${NAME[op arg]}` reference; `op` is "" for plain `${NAME}` and `$NAME`."""

    name: str
    op: str
    arg: str
    text: str

    @property
    def required(self) -> bool:
        return self.op == ":?"

    @property
    def default(self) -> str | None:
        return self.arg if self.op in (":-", "-") else None


class MissingVariable(Exception):
    """A `${NAME:?message}` variable has no value."""


def parse_ref(match: re.Match[str]) -> VariableRef:
    """The reference a VARIABLE match (not an escaped `$$`) stands for."""
    if match["bare"]:
        return VariableRef(match["bare"], "", "", match[0])
    parts = BRACED.fullmatch(match["braced"])
    if parts is None:
        raise ValueError(f"invalid interpolation {match[0]!r} in {COMPOSE_FILE.name}")
    return VariableRef(parts["name"], parts["op"] or "", parts["arg"] or "", match[0])


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute variables in `text` like compose does, reading values from `env`."""

    def value(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        ref = parse_ref(match)
        current = env.get(ref.name)
        if ref.op in (":?", "?") and (current is None or (ref.op == ":?" and current == "")):
            raise MissingVariable(f"required variable {ref.name} is missing a value: {ref.arg}")
        if ref.op in (":-", "-") and (current is None or (ref.op == ":-" and current == "")):
            return ref.arg
        if ref.op in (":+", "+"):
            is_set = bool(current) if ref.op == ":+" else current is not None
            return ref.arg if is_set else ""
        return current or ""

    return VARIABLE.sub(value, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """`node` (parsed YAML) with every string value interpolated; keys stay as they are."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolate_tree(item, env) for key, item in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    return node


def looks_secret(name: str) -> bool:
    """True for names like FMON_JWT_SECRET, POSTGRES_PASSWORD, INFLUXDB_ADMIN_TOKEN."""
    return any(word in name.upper() for word in SECRET_WORDS)


def dummy_secret(name: str) -> str:
    """A URL-safe stand-in for secret `name`, long enough for every length rule (JWT: 32)."""
    return f"dummy-{name.lower().replace('_', '-')}-".ljust(48, "x")


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of a .env file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: {line!r} is not NAME=value"
            env[name.strip()] = value.strip()
    return env


@cache
def example_env() -> dict[str, str]:
    """.env.example as a user would fill it in: every secret set, every optional value left empty."""
    return {
        name: (dummy_secret(name) if looks_secret(name) and not value else value)
        for name, value in read_env_file(ENV_EXAMPLE).items()
    }


@cache
def raw_compose() -> dict[str, Any]:
    """docker-compose.yml as YAML (anchors and `<<` merges resolved), not yet interpolated."""
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict), "docker-compose.yml is not a mapping"
    assert isinstance(doc.get("services"), dict), "no services in docker-compose.yml"
    return doc


@cache
def compose() -> dict[str, Any]:
    """docker-compose.yml interpolated with `example_env()`."""
    try:
        result: dict[str, Any] = interpolate_tree(raw_compose(), example_env())
    except MissingVariable as exc:
        pytest.fail(f"docker-compose.yml with .env.example filled in: {exc}")
    return result


def fmon_service_names() -> list[str]:
    """Services running the fmon image: those built from this repository, or using the image they build."""
    services = raw_compose()["services"]
    built_images = {service.get("image") for service in services.values() if "build" in service} - {None}
    return [name for name, service in services.items() if "build" in service or service.get("image") in built_images]


def profiles_of(service: Mapping[str, Any]) -> list[str]:
    return list(service.get("profiles") or [])


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment` (mapping or list form) as strings; pass-through entries are left out."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(key): str(value) for key, value in env.items() if value is not None}


def as_argv(value: str | list[Any] | None) -> list[str]:
    """A compose `command`/`entrypoint` (string or list) as an argv list."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


def iter_strings(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string value in parsed YAML with its path of keys and indexes."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, item in node.items():
            yield from iter_strings(item, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from iter_strings(item, (*path, index))


@dataclass(frozen=True)
class RefUse:
    """Where a variable is referenced: service, key path, and the text just before it."""

    service: str
    path: tuple[Any, ...]
    ref: VariableRef
    before: str

    @property
    def secret(self) -> bool:
        """A password, token or secret: by its own name, its key's name, or its place in a URL."""
        key = self.path[-1] if self.path and isinstance(self.path[-1], str) else ""
        return looks_secret(self.ref.name) or looks_secret(key) or bool(URL_USERINFO_BEFORE.search(self.before))


def variable_uses() -> list[RefUse]:
    """Every variable reference in the services of the raw compose file."""
    uses = []
    for name, service in raw_compose()["services"].items():
        for path, text in iter_strings(service):
            for match in VARIABLE.finditer(text):
                if not match["escaped"]:
                    uses.append(RefUse(name, path, parse_ref(match), text[: match.start()]))
    return uses


def referenced_variables() -> set[str]:
    """Names of all variables the compose file reads, anywhere in it."""
    return {
        parse_ref(m).name
        for _, text in iter_strings(raw_compose())
        for m in VARIABLE.finditer(text)
        if not m["escaped"]
    }


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile: continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        keyword, _, rest = (current + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def dockerfile_args(name: str) -> list[str]:
    return [rest for keyword, rest in dockerfile_instructions() if keyword == name]


def dockerfile_entrypoint() -> list[str]:
    """The image's ENTRYPOINT (exec form)."""
    entrypoints = dockerfile_args("ENTRYPOINT")
    assert entrypoints, "the Dockerfile has no ENTRYPOINT"
    return [str(item) for item in json.loads(entrypoints[-1])]


def dockerfile_fmon_env() -> dict[str, str]:
    """The FMON_* variables the final image sets with ENV (defaults under compose's environment)."""
    final_stage_start = max(i for i, (keyword, _) in enumerate(dockerfile_instructions()) if keyword == "FROM")
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions()[final_stage_start:]:
        if keyword == "ENV":
            pairs = (token.split("=", 1) for token in shlex.split(rest))
            env.update({key: value for key, value in pairs if key.startswith("FMON_")})
    return env


def settings_field_for(variable: str) -> str | None:
    """The Settings field `FMON_X` sets (`x`), or None when there is no such field."""
    name = variable.removeprefix("FMON_").lower()
    return name if name in Settings.model_fields else None


# --- Running the CLI without running fmon ----------------------------------------------------


@dataclass
class Invocation:
    """The command click would run for an argv, with its parsed parameters."""

    path: str
    command: click.Command
    params: dict[str, Any]


def all_commands(command: click.Command) -> Iterator[click.Command]:
    """`command` and, for a group, every command below it."""
    yield command
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from all_commands(sub)


def parse_fmon_argv(args: list[str], monkeypatch: pytest.MonkeyPatch) -> Invocation:
    """Run `fmon ARGS` through the real click group with every callback replaced by a recorder.

    Click parses and validates everything as in production (unknown commands and options,
    types, choices, required options) and invokes nothing of fmon. Fails the test with click's
    message when the command line is invalid; returns the innermost command invoked.
    """
    invoked: list[Invocation] = []

    def record(**params: Any) -> None:
        ctx = click.get_current_context()
        invoked.append(Invocation(ctx.command_path, ctx.command, params))

    for command in all_commands(main):
        monkeypatch.setattr(command, "callback", record)
    try:
        main.main(args=list(args), prog_name="fmon", standalone_mode=False)
    except click.ClickException as exc:
        pytest.fail(f"`fmon {shlex.join(args)}` is not a valid fmon command line: {exc.format_message()}")
    assert invoked, f"`fmon {shlex.join(args)}` runs no command (help or version only?)"
    leaf = invoked[-1]
    assert not isinstance(leaf.command, click.Group), f"`fmon {shlex.join(args)}` names the group {leaf.path!r}"
    return leaf


def fmon_argv(service_name: str) -> list[str]:
    """The argv after `fmon` that a service runs: its entrypoint (or the image's) plus its command."""
    service = compose()["services"][service_name]
    entrypoint = as_argv(service["entrypoint"]) if "entrypoint" in service else dockerfile_entrypoint()
    argv = entrypoint + as_argv(service.get("command"))
    assert argv[:1] == ["fmon"], f"{service_name} runs {argv!r}, not fmon"
    return argv[1:]


def fmon_settings(service_name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Build Settings exactly as the service's container would: image ENV, then compose environment."""
    for name in list(os.environ):
        if name.startswith("FMON_"):
            monkeypatch.delenv(name)
    env = {**dockerfile_fmon_env(), **environment_of(compose()["services"][service_name])}
    for name, value in env.items():
        if name.startswith("FMON_"):
            monkeypatch.setenv(name, value)
    try:
        return load_settings()
    except ConfigError as exc:
        pytest.fail(f"{service_name}: its FMON_* environment is not valid fmon settings: {exc}")


# --- Compose structure -----------------------------------------------------------------------


def test_every_service_has_a_healthcheck() -> None:
    missing = []
    for name, service in compose()["services"].items():
        check = service.get("healthcheck") or {}
        test = as_argv(check.get("test"))
        if check.get("disable") or not test or test[0] == "NONE":
            missing.append(name)
    assert missing == [], f"services without a healthcheck: {missing}"


def test_depends_on_waits_for_healthy_services_that_exist() -> None:
    services = compose()["services"]
    problems = []
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):  # the short form means condition: service_started
            problems.append(f"{name}: depends_on {depends_on} waits only for the start, not for health")
            continue
        for target, spec in depends_on.items():
            if target not in services:
                problems.append(f"{name}: depends on {target!r}, which is not a service")
                continue
            if (spec or {}).get("condition") != "service_healthy":
                problems.append(f"{name}: depends on {target} without condition: service_healthy")
            target_profiles = profiles_of(services[target])
            if target_profiles and not set(target_profiles) & set(profiles_of(service)):
                problems.append(f"{name}: depends on {target}, which only runs in profiles {target_profiles}")
    assert problems == []


# --- fmon services against the CLI and the settings ------------------------------------------


def command_paths(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """fmon service name -> the command it runs, as click names it ("fmon api", "fmon simulate run")."""
    return {name: parse_fmon_argv(fmon_argv(name), monkeypatch).path for name in fmon_service_names()}


def has_option(argv: list[str], option: str) -> bool:
    """True when `argv` passes `option` explicitly (`--opt value` or `--opt=value`)."""
    return any(arg == option or arg.startswith(f"{option}=") for arg in argv)


def test_compose_runs_the_fmon_processes_the_design_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """DESIGN.md §1: production runs `fmon ingest` and `fmon api`; the demo profile adds a simulator."""
    services = raw_compose()["services"]
    always_on = {path for name, path in command_paths(monkeypatch).items() if not profiles_of(services[name])}
    assert {"fmon ingest", "fmon api"} <= always_on


@pytest.mark.parametrize("service_name", fmon_service_names())
def test_fmon_service_command_is_a_valid_cli_invocation(service_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    invocation = parse_fmon_argv(fmon_argv(service_name), monkeypatch)
    assert invocation.path.startswith("fmon ")


@pytest.mark.parametrize("service_name", fmon_service_names())
def test_fmon_environment_names_only_settings_fields(service_name: str) -> None:
    env = environment_of(raw_compose()["services"][service_name])
    unknown = [
        name
        for name in env
        if name.startswith("FMON_") and name != CONFIG_FILE_ENV and settings_field_for(name) is None
    ]
    assert unknown == [], f"{service_name}: FMON_* variables that are no Settings field (fmon ignores them): {unknown}"


def test_dockerfile_env_names_only_settings_fields() -> None:
    unknown = [name for name in dockerfile_fmon_env() if settings_field_for(name) is None]
    assert unknown == []


def reads_settings(command: click.Command) -> bool:
    """fmon commands that build Settings take `--config` (CONFIG_OPTION in runtime/cli_support.py)."""
    return any(param.name == "config_file" for param in command.params)


@pytest.mark.parametrize("service_name", fmon_service_names())
def test_fmon_environment_is_valid_settings(service_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    invocation = parse_fmon_argv(fmon_argv(service_name), monkeypatch)
    service = compose()["services"][service_name]
    if not reads_settings(invocation.command):
        ignored = [name for name in environment_of(service) if name.startswith("FMON_")]
        assert ignored == [], f"{service_name}: `{invocation.path}` reads no settings, so FMON_* does nothing"
        return
    settings = fmon_settings(service_name, monkeypatch)
    if not profiles_of(service):
        assert settings.environment == "production"


def test_api_listens_where_its_healthcheck_and_port_mapping_look(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    api_services = [name for name, path in command_paths(monkeypatch).items() if path == "fmon api"]
    assert api_services, "no service runs `fmon api`"
    for name in api_services:
        settings = fmon_settings(name, monkeypatch)
        assert settings.api_host == "0.0.0.0", f"{name}: the API must listen on all interfaces in a container"
        healthcheck = " ".join(as_argv(services[name]["healthcheck"]["test"]))
        ports = HEALTHZ_URL.findall(healthcheck)
        assert ports == [str(settings.api_port)], f"{name}: healthcheck {healthcheck!r} vs api_port {settings.api_port}"
        assert settings.api_port in container_ports(services[name]), f"{name}: api_port is not published"


def container_ports(service: Mapping[str, Any]) -> set[int]:
    """Container-side ports of a service's `ports` (short "host:container[/proto]" or long form)."""
    ports = set()
    for entry in service.get("ports") or []:
        target = entry["target"] if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1].split("/")[0]
        ports.add(int(target))
    return ports


def test_demo_profile_simulates_a_site_through_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    simulators = [
        name
        for name, path in command_paths(monkeypatch).items()
        if path == "fmon simulate run" and "demo" in profiles_of(services[name])
    ]
    assert simulators, "the demo profile has no service running `fmon simulate run`"
    for name in simulators:
        argv = fmon_argv(name)
        assert has_option(argv, "--broker"), f"{name}: pass --broker explicitly"
        assert has_option(argv, "--site"), f"{name}: pass --site explicitly"
        params = parse_fmon_argv(argv, monkeypatch).params
        broker = BrokerAddress.parse(params["broker"])
        assert broker.host in services, f"{name}: broker host {broker.host!r} is not a compose service"
        assert broker.username, f"{name}: the broker allows no anonymous access; log in as a gateway"
        validate_id(params["site"], "site id")


# --- Secrets and variables -------------------------------------------------------------------


def test_no_secret_has_a_default() -> None:
    """Secrets are required (`${VAR:?message}`); a profile-only service may leave one empty, never preset it."""
    problems = []
    for use in variable_uses():
        if not use.secret:
            continue
        where = f"{use.service} {'.'.join(map(str, use.path))}: {use.ref.text}"
        if use.ref.default:
            problems.append(f"{where} gives a secret a default value")
        elif not use.ref.required and not profiles_of(raw_compose()["services"][use.service]):
            problems.append(f"{where} must be required: ${{{use.ref.name}:?message}}")
    assert problems == []


def test_env_example_lists_exactly_the_compose_variables() -> None:
    listed = set(read_env_file(ENV_EXAMPLE))
    used = referenced_variables()
    assert sorted(used - listed) == [], "variables docker-compose.yml reads but .env.example does not list"
    assert sorted(listed - used) == [], "variables .env.example lists but docker-compose.yml never reads"


def test_env_example_holds_no_secret_values() -> None:
    preset = [name for name, value in read_env_file(ENV_EXAMPLE).items() if looks_secret(name) and value]
    assert preset == []


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_runs_fmon_from_the_locked_environment_as_non_root() -> None:
    assert dockerfile_entrypoint() == ["fmon"]
    runs = dockerfile_args("RUN")
    assert any(re.search(r"\bpip install\b.*\buv\b", run) for run in runs), "install uv with pip"
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs, "install with `uv sync --frozen --no-dev`"
    assert all("--frozen" in run and "--no-dev" in run for run in syncs), syncs
    users = dockerfile_args("USER")
    assert users, "the image must run as a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    assert "8000" in " ".join(dockerfile_args("EXPOSE")).split()


def test_dockerfile_builds_on_python_311_slim() -> None:
    defaults = dict(arg.split("=", 1) for arg in dockerfile_args("ARG") if "=" in arg)
    stages = set()
    for spec in dockerfile_args("FROM"):
        image, _, stage = spec.partition(" AS ") if " AS " in spec else spec.partition(" as ")
        resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m[1], m[0]), image.strip())
        assert resolved in stages or resolved == "python:3.11-slim", f"FROM {spec} resolves to {resolved}"
        stages.add(stage.strip())


def test_dockerfile_copies_every_packaged_module() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {
        source.removeprefix("./").rstrip("/") or "."
        for spec in dockerfile_args("COPY")
        if not spec.startswith("--from")
        for source in shlex.split(spec)[:-1]
    }
    assert "." in copied or sorted(set(packages) - copied) == [], "packages the image would not contain"


# --- The broker: users in compose, the shipped ACL and config on a real Mosquitto ------------


def acl_users() -> set[str]:
    """Users that have a `user` section in the shipped ACL."""
    lines = (MOSQUITTO_DIR / "acl").read_text().splitlines()
    return {words[1] for words in map(str.split, lines) if len(words) == 2 and words[0] == "user"}


def broker_logins(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Broker user name of every fmon service: from its --broker option, or its FMON_BROKER_URL setting."""
    logins = {}
    for name in fmon_service_names():
        invocation = parse_fmon_argv(fmon_argv(name), monkeypatch)
        if invocation.params.get("broker"):
            url = invocation.params["broker"]
        elif reads_settings(invocation.command):
            url = fmon_settings(name, monkeypatch).broker_url
        else:
            continue
        logins[name] = BrokerAddress.parse(url).username or "(anonymous)"
    return logins


def test_every_broker_login_in_compose_has_acl_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    users = acl_users()
    missing = {service: user for service, user in broker_logins(monkeypatch).items() if user not in users}
    assert missing == {}, "services logging in as users the ACL does not know (so they may do nothing)"


class ShippedMosquitto(MosquittoServer):
    """Mosquitto with deploy/mosquitto's mosquitto.conf and acl, and a password file for `users`.

    Container paths in the config move into the temp dir and `listener 1883` moves to a free
    loopback port; everything else is the shipped file.
    """

    name = "mosquitto-shipped"

    def __init__(self, users: Mapping[str, str]) -> None:
        super().__init__()
        self._users = dict(users)

    def _configure(self, workdir: Path) -> list[str]:
        binary = find_binary("mosquitto", "mosquitto")
        passwd_tool = find_binary("mosquitto_passwd", "mosquitto")
        self._port = free_port()
        passwd = workdir / "passwd"
        passwd.touch(mode=0o600)
        for user, password in self._users.items():
            subprocess.run([passwd_tool, "-b", str(passwd), user, password], check=True, capture_output=True)
        shutil.copy(MOSQUITTO_DIR / "acl", workdir / "acl")
        (workdir / "data").mkdir()
        config = workdir / "mosquitto.conf"
        config.write_text(self._local_config(workdir))
        return [binary, "-c", str(config)]

    def _local_config(self, workdir: Path) -> str:
        text = (MOSQUITTO_DIR / "mosquitto.conf").read_text()
        assert re.search(r"^listener 1883$", text, re.MULTILINE), "mosquitto.conf has no `listener 1883`"
        text = re.sub(r"^listener 1883$", f"listener {self._port} 127.0.0.1", text, flags=re.MULTILINE)
        text = text.replace("/mosquitto/config/", f"{workdir}/").replace("/mosquitto/data/", f"{workdir}/data/")
        if os.geteuid() == 0:
            text += "\nuser root\n"  # otherwise it drops to the user mosquitto, who cannot read the temp dir
        return text


@dataclass
class Inbox:
    """What a Probe's client reports: CONNACK, SUBACK reason codes, topics of received messages."""

    connack: queue.Queue[Any]
    subacks: queue.Queue[list[Any]]
    messages: queue.Queue[str]


def _on_connect(_client: mqtt.Client, inbox: Inbox, _flags: Any, reason: Any, _props: Any) -> None:
    inbox.connack.put(reason)


def _on_subscribe(_client: mqtt.Client, inbox: Inbox, _mid: int, reasons: Any, _props: Any) -> None:
    inbox.subacks.put(list(reasons))


def _on_message(_client: mqtt.Client, inbox: Inbox, message: mqtt.MQTTMessage) -> None:
    inbox.messages.put(message.topic)


class Probe:
    """An MQTT client that records its CONNACK, SUBACKs and the messages it receives.

    The callbacks get the Inbox as paho userdata rather than closing over the Probe: no reference
    cycle, so paho's client is freed (and its sockets closed) as soon as the Probe is.
    """

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.inbox = Inbox(queue.Queue(), queue.Queue(), queue.Queue())
        self.messages = self.inbox.messages
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}", userdata=self.inbox
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_connect = _on_connect
        self._client.on_subscribe = _on_subscribe
        self._client.on_message = _on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self.accepted = not self.inbox.connack.get(timeout=10).is_failure

    def subscribe(self, topic: str) -> bool:
        """Subscribe with QoS 1; True when the broker grants it."""
        self._client.subscribe(topic, qos=1)
        return not self.inbox.subacks.get(timeout=10)[0].is_failure

    def publish(self, topic: str) -> None:
        self._client.publish(topic, b"{}", qos=1).wait_for_publish(timeout=10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture(scope="module")
def shipped_broker() -> Iterator[ShippedMosquitto]:
    broker = ShippedMosquitto({"fmon": "fmon-test-password", "demo-gateway": "gateway-test-password"})
    try:
        broker.start()
    except ServiceUnavailable as exc:
        service_unavailable(exc)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def probes(shipped_broker: ShippedMosquitto) -> Iterator[dict[str, Probe]]:
    clients = {
        "fmon": Probe(shipped_broker.port, "fmon", "fmon-test-password"),
        "gateway": Probe(shipped_broker.port, "demo-gateway", "gateway-test-password"),
    }
    yield clients
    for client in clients.values():
        client.close()


def test_shipped_broker_refuses_anonymous_and_wrong_passwords(shipped_broker: ShippedMosquitto) -> None:
    for username, password in ((None, None), ("fmon", "wrong-password"), ("nobody", "fmon-test-password")):
        probe = Probe(shipped_broker.port, username, password)
        probe.close()
        assert not probe.accepted, f"the broker let {username or 'an anonymous client'} in"


def received_until(probe: Probe, last: str) -> list[str]:
    """Topics `probe` receives up to and including `last` (sent last by one publisher, so in order)."""
    received: list[str] = []
    while last not in received:
        received.append(probe.messages.get(timeout=10))
    return received


def test_shipped_acl_confines_what_the_gateway_publishes_to_its_site(probes: dict[str, Probe]) -> None:
    fmon, gateway = probes["fmon"], probes["gateway"]
    assert fmon.subscribe("fmon/#")
    assert fmon.subscribe("spBv1.0/#")
    allowed, last = "fmon/v1/demo/env/sensor-1/telemetry", "fmon/v1/demo/gateway/gw/status"
    for topic in (
        allowed,
        "fmon/v1/other-site/env/sensor-1/telemetry",
        ALARM_EVENTS_TOPIC,
        "spBv1.0/other-site/NDATA/edge-1",
        last,
    ):
        gateway.publish(topic)  # the broker drops denied publishes silently (MQTT 3.1.1)
    assert received_until(fmon, last) == [allowed, last]


def test_shipped_acl_confines_what_the_gateway_receives_to_its_site(probes: dict[str, Probe]) -> None:
    fmon, gateway = probes["fmon"], probes["gateway"]
    # Mosquitto may grant a subscription and still filter each message by the ACL: check delivery.
    gateway.subscribe("fmon/#")
    gateway.subscribe("spBv1.0/#")
    allowed, last = "fmon/v1/demo/gas/detector-1/command", "fmon/v1/demo/gas/detector-2/command"
    for topic in (
        allowed,
        ALARM_EVENTS_TOPIC,
        "fmon/v1/other-site/gas/detector-1/command",
        "spBv1.0/other-site/NCMD/edge-1",
        last,
    ):
        fmon.publish(topic)
    assert received_until(gateway, last) == [allowed, last]


def test_fmon_uses_its_internal_bus(probes: dict[str, Probe]) -> None:
    fmon = probes["fmon"]
    assert fmon.subscribe(ALARM_EVENTS_TOPIC)
    fmon.publish(ALARM_EVENTS_TOPIC)
    assert fmon.messages.get(timeout=10) == ALARM_EVENTS_TOPIC


def test_compose_mosquitto_healthcheck_passes_on_the_shipped_broker(shipped_broker: ShippedMosquitto) -> None:
    """Runs the compose healthcheck command itself (port moved), with the right and a wrong password."""
    try:
        find_binary("mosquitto_sub", "mosquitto-clients")
    except ServiceUnavailable as exc:
        service_unavailable(exc)
    test = as_argv(compose()["services"]["mosquitto"]["healthcheck"]["test"])
    assert test[0] == "CMD-SHELL"
    assert "-p 1883" in test[1]
    command = test[1].replace("-p 1883", f"-p {shipped_broker.port}")
    password_variables = [ref for ref in re.findall(r"\$\{?(\w+)", command) if looks_secret(ref)]
    assert len(password_variables) == 1, f"expected one password variable in {command!r}"
    for password, expected in (("fmon-test-password", 0), ("wrong-password", "non-zero")):
        env = {**os.environ, password_variables[0]: password}
        code = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=30).returncode
        assert (code == 0) == (expected == 0), f"healthcheck exited {code} with password {password!r}"


def test_shipped_broker_publishes_uptime_for_the_healthcheck(probes: dict[str, Probe]) -> None:
    assert probes["fmon"].subscribe("$SYS/broker/uptime")
    assert probes["fmon"].messages.get(timeout=10) == "$SYS/broker/uptime"
