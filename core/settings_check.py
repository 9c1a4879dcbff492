"""Unknown `FMON_*` environment variables: a misspelled setting must not pass in silence.

pydantic-settings reads only the variables it knows, so `FMON_INFLUXURL=…` leaves the InfluxDB
unset and telemetry goes to SQLite without a word. `unknown_settings` lists the `FMON_*`
variables that are no setting, each with the closest setting's name; the `fmon` command logs
them as warnings at start (runtime/cli_support.py).

Not a validator: fmon still starts, because `FMON_*` names are also used for things that are no
setting, such as the secrets a notification file references (`${FMON_SMTP_PASSWORD}`), which the
caller passes as `ignore`, and the variables of docker-compose's `.env` (`NOT_SETTINGS`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.settings import CONFIG_FILE_ENV, Settings

PREFIX = "FMON_"
# Documented FMON_* variables that are no setting: docker-compose's .env (docs/deployment.md),
# the image's build argument and the benchmarks' data location.
NOT_SETTINGS = frozenset({CONFIG_FILE_ENV, "FMON_MQTT_PASSWORD", "FMON_IMAGE", "FMON_UID", "FMON_PDM_DATA"})
_REFERENCE = re.compile(r"\$\{(\w+)\}")  # ${NAME} in a configuration file


@dataclass(frozen=True, slots=True)
class UnknownSetting:
    """An `FMON_*` variable no setting reads, and the setting it probably meant."""

    name: str
    suggestion: str | None

    @property
    def message(self) -> str:
        hint = f"did you mean {self.suggestion}?" if self.suggestion else "no fmon setting has a similar name"
        return f"unknown setting {self.name} is ignored: {hint}"


def setting_variables() -> frozenset[str]:
    """The environment variable of every setting (field `x` is `FMON_X`)."""
    return frozenset(PREFIX + name.upper() for name in Settings.model_fields)


def unknown_settings(environ: Mapping[str, str], ignore: Iterable[str] = ()) -> list[UnknownSetting]:
    """The `FMON_*` variables of `environ` that are no setting, sorted by name. Like
    pydantic-settings, names are compared without regard to case."""
    known = setting_variables()
    skip = known | NOT_SETTINGS | {name.upper() for name in ignore}
    return [UnknownSetting(name, closest_setting(name, known)) for name in sorted(environ)
            if name.upper().startswith(PREFIX) and name.upper() not in skip]


def closest_setting(name: str, known: Iterable[str]) -> str | None:
    """The known variable whose name is most like `name`, if any is close enough."""
    # Compared without the shared prefix, which would make every pair look alike.
    by_field = {variable.removeprefix(PREFIX): variable for variable in known}
    found = difflib.get_close_matches(name.upper().removeprefix(PREFIX), sorted(by_field), n=1, cutoff=0.6)
    return by_field[found[0]] if found else None


def referenced_variables(text: str) -> set[str]:
    """The `${NAME}` variables a configuration file's text refers to."""
    return set(_REFERENCE.findall(text))
