"""ORM models of the equipment ledger: equipment, maintenance plans, work orders, predictions
(issue 8).

Registered on `storage.state.models.Base`; migration 0008 follows these.
"""

from __future__ import annotations
