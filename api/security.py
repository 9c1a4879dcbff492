"""Passwords (argon2) and access tokens (short-lived HS256 JWTs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.domain import Role
from core.errors import AuthError

_hasher = PasswordHasher()
_ALGORITHM = "HS256"


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
class TokenIssuer:
    secret: str
    ttl: timedelta

    def issue(self, principal: Principal, now: datetime) -> str:
        claims = {"sub": principal.username, "role": principal.role.value,
                  "iat": int(now.timestamp()), "exp": int((now + self.ttl).timestamp())}
        return jwt.encode(claims, self.secret, algorithm=_ALGORITHM)

    def verify(self, token: str, now: datetime) -> Principal:
        try:
            claims = jwt.decode(token, self.secret, algorithms=[_ALGORITHM],
                                # time is checked below against the injected clock
                                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                         "require": ["sub", "role", "exp"]})
            if claims["exp"] <= now.timestamp():
                raise AuthError("token expired")
            return Principal(claims["sub"], Role(claims["role"]))
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise AuthError(f"invalid token: {exc}") from None
