"""`POST /api/v1/auth/token`: OAuth2 password flow issuing a short-lived JWT."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import Services, Viewer
from api.security import DUMMY_HASH, Principal, verify_password
from core.domain import Role

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token")
def issue_token(services: Services, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
    user = services.users.get(form.username)
    valid = verify_password(user.password_hash if user else DUMMY_HASH, form.password)
    if user is None or not valid or user.disabled:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = Principal(user.username, Role(user.role))
    token = services.tokens.issue(principal, services.clock.now())
    return {"access_token": token, "token_type": "bearer",
            "expires_in": int(services.tokens.ttl.total_seconds()), "role": principal.role.value}


@router.get("/me")
def who_am_i(principal: Viewer) -> dict[str, str]:
    return {"username": principal.username, "role": principal.role.value}
