"""Passwords (argon2) and access tokens (short-lived HS256 JWTs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.domain import Role
from core.errors import AuthError

_hasher = PasswordHasher()
_ALGORITHM = "HS256"
# How long renewals may keep a sign-in alive: a control-room shift and its handover, not forever.
MAX_SESSION = timedelta(hours=24)


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("passwords need at least 8 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A real hash to verify against when the user does not exist, so that the response time does
# not reveal which usernames exist.
DUMMY_HASH = _hasher.hash("not-a-real-password")


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    role: Role


@dataclass(frozen=True, slots=True)
class Grant:
    """A verified token: who, until when, and when they last gave their password."""

    principal: Principal
    expires_at: datetime
    signed_in_at: datetime

    def expired(self, now: datetime) -> bool:
        return now.timestamp() >= self.expires_at.timestamp()


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    """Issues and checks access tokens. A token can be renewed (`renew`) while it is valid, but
    only up to `max_session` after the password was given: a stolen token does not live forever."""

    secret: str
    ttl: timedelta
    max_session: timedelta = MAX_SESSION

    def issue(self, principal: Principal, now: datetime, signed_in_at: datetime | None = None) -> str:
        # auth_time (OpenID Connect's name) is carried over by renewals
        claims = {"sub": principal.username, "role": principal.role.value,
                  "iat": int(now.timestamp()), "exp": int((now + self.ttl).timestamp()),
                  "auth_time": int((signed_in_at or now).timestamp())}
        return jwt.encode(claims, self.secret, algorithm=_ALGORITHM)

    def verify(self, token: str, now: datetime) -> Principal:
        return self.grant(token, now).principal

    def grant(self, token: str, now: datetime) -> Grant:
        """The valid, unexpired token's grant; `AuthError` otherwise."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=[_ALGORITHM],
                                # time is checked below against the injected clock
                                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                         "require": ["sub", "role", "exp"]})
            if claims["exp"] <= now.timestamp():
                raise AuthError("token expired")
            expires = datetime.fromtimestamp(claims["exp"], UTC)
            signed_in = datetime.fromtimestamp(claims.get("auth_time", claims.get("iat", 0)), UTC)
            return Grant(Principal(claims["sub"], Role(claims["role"])), expires, signed_in)
        except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError) as exc:
            raise AuthError(f"invalid token: {exc}") from None

    def renew(self, grant: Grant, principal: Principal, now: datetime) -> str:
        """A new token for `principal` (its current role) in place of the still-valid `grant`."""
        if now - grant.signed_in_at >= self.max_session:
            raise AuthError(f"signed in more than {self.max_session} ago: sign in again")
        return self.issue(principal, now, signed_in_at=grant.signed_in_at)
