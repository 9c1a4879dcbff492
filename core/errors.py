"""The error hierarchy of fmon.

Third-party errors are translated into these where the library is called, so callers catch
one family of exceptions::

    FmonError
    ├── ConfigError            settings, files and command-line values that cannot be used
    ├── ContractError          input that breaks a contract; carries a machine-readable reason
    │   ├── TopicError         an MQTT topic outside the v1 contract
    │   └── PayloadError       a payload that cannot be decoded or fails validation
    ├── StorageError           a store refused or failed an operation
    │   └── StoreUnavailable   the store cannot be reached now; retry later
    ├── AuthError              bad credentials or token
    │   └── PermissionDenied   authenticated, but the role is not enough
    ├── NotFound               a requested record does not exist
    └── Conflict               a concurrent change won; reload and retry
"""

from __future__ import annotations


class FmonError(Exception):
    """Base class of every error fmon raises on purpose."""


class ConfigError(FmonError):
    """A setting, configuration file or command-line value cannot be used."""


class ContractError(FmonError):
    """Input that breaks a contract.

    `reason` is a short stable code (for example ``bad_json``), used to group dead letters
    and in metrics; the message is for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TopicError(ContractError):
    """An MQTT topic that does not follow the v1 contract."""


class PayloadError(ContractError):
    """A payload that cannot be decoded or whose content fails validation."""


class StorageError(FmonError):
    """A store refused or failed an operation."""


class StoreUnavailable(StorageError):
    """The store cannot be reached now; the operation may succeed later."""


class AuthError(FmonError):
    """Bad credentials or an invalid, expired token."""


class PermissionDenied(AuthError):
    """The caller is authenticated but its role does not allow the action."""


class NotFound(FmonError):
    """A requested record does not exist."""


class Conflict(FmonError):
    """Someone else changed the record first; reload and retry."""
