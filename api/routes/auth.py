"""`POST /api/v1/auth/token`: OAuth2 password flow issuing a short-lived JWT, and
`POST /api/v1/auth/refresh`, which trades a valid one for a new one.

Tokens live `FMON_JWT_TTL_MINUTES` (15 by default). The console renews its token before it
expires, so an operator signs in once per shift, not every 15 minutes; renewal needs a valid,
unexpired token of a user who is still active, re-reads the user's role, and ends
`MAX_SESSION` (api/security.py) after the password was given.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import ApiServices, Services, Viewer, oauth2_scheme
from api.security import DUMMY_HASH, Principal, verify_password
from core.domain import Role
from core.errors import AuthError

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token")
def issue_token(services: Services, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
    user = services.users.get(form.username)
    valid = verify_password(user.password_hash if user else DUMMY_HASH, form.password)
    if user is None or not valid or user.disabled:
        raise _unauthorized("wrong username or password")
    principal = Principal(user.username, Role(user.role))
    return _grant_body(services, services.tokens.issue(principal, services.clock.now()), principal)


@router.post("/refresh")
def refresh_token(services: Services, principal: Viewer,
                  token: Annotated[str, Depends(oauth2_scheme)]) -> dict[str, Any]:
    """A new token for the bearer's valid one (same answer as /auth/token); the role is the
    user's current one. 401 once the token expired, the user was disabled or removed, or the
    sign-in is older than the longest session."""
    now = services.clock.now()
    try:  # `principal` (the Viewer check) already refused bad and expired tokens and inactive users
        renewed = services.tokens.renew(services.tokens.grant(token, now), principal, now)
    except AuthError as exc:
        raise _unauthorized(str(exc)) from None
    return _grant_body(services, renewed, principal)


@router.get("/me")
def who_am_i(principal: Viewer) -> dict[str, str]:
    return {"username": principal.username, "role": principal.role.value}


def _grant_body(services: ApiServices, token: str, principal: Principal) -> dict[str, Any]:
    return {"access_token": token, "token_type": "bearer",
            "expires_in": int(services.tokens.ttl.total_seconds()), "role": principal.role.value}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})
