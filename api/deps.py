"""What routes depend on: the services bundle, the current principal, role checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from prometheus_client import CollectorRegistry

from alarms.actions import AlarmActions
from alarms.events import AlarmEvent
from alarms.lifecycle import DEFAULT_MAX_SHELVE
from api.hub import EventHub
from api.security import Principal, TokenIssuer
from core.clock import Clock
from core.domain import Role
from core.errors import AuthError
from playbooks.actions import IncidentActions
from playbooks.model import Playbook
from playbooks.views import IncidentEvent
from storage.state.database import StateDatabase
from storage.state.dead_letters import DeadLetterStore
from storage.state.registry import RegistryStore
from storage.state.users import UserStore
from storage.telemetry import TelemetryStore


@dataclass
class ApiServices:
    """Everything the API needs, built by the runtime and handed to `create_app`."""

    db: StateDatabase
    users: UserStore
    dead_letters: DeadLetterStore
    tokens: TokenIssuer
    clock: Clock
    hub: EventHub
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    publish: Callable[[AlarmEvent], None] | None = None  # default: straight to this process's hub
    playbooks: Sequence[Playbook] = ()  # the library operators start incidents with
    publish_incident: Callable[[IncidentEvent], None] | None = None  # default: this process's hub
    max_shelve: timedelta = DEFAULT_MAX_SHELVE  # the longest shelve (settings: FMON_ALARM_MAX_SHELVE_HOURS)
    telemetry: TelemetryStore | None = None  # for history charts; None: those routes answer 503

    def __post_init__(self) -> None:
        publish = self.publish or (lambda event: self.hub.publish_threadsafe(event.as_message()))
        self.publish_alarm: Callable[[AlarmEvent], None] = publish  # routes publish after their commit
        self.actions = AlarmActions(self.db, self.clock, publish, self.max_shelve)
        incident_publish = self.publish_incident or (lambda event: self.hub.publish_threadsafe(event.as_message()))
        self.incidents = IncidentActions(self.db, self.clock, self.playbooks, incident_publish)
        self.registry = RegistryStore(self.db)


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token")


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


Services = Annotated[ApiServices, Depends(get_services)]


def get_principal(services: Services, token: Annotated[str, Depends(oauth2_scheme)]) -> Principal:
    try:
        principal = services.tokens.verify(token, services.clock.now())
    except AuthError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc),
                            headers={"WWW-Authenticate": "Bearer"}) from None
    user = services.users.get(principal.username)
    if user is None or user.disabled:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "user no longer active",
                            headers={"WWW-Authenticate": "Bearer"})
    return Principal(user.username, Role(user.role))


def require(role: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets through principals whose role includes `role`."""

    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.role.allows(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs role {role.value} or above")
        return principal

    check.required_role = role  # type: ignore[attr-defined]  # read by the route-role test
    return check


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Engineer = Annotated[Principal, Depends(require(Role.ENGINEER))]
