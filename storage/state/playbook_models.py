"""ORM models of running playbooks: an incident's playbook run and its steps (issue 7).

Registered on `storage.state.models.Base`; migration 0007 follows these.
"""

from __future__ import annotations
