"""Why a notification is sent: the `reason` of a notification-log row.

    raised          a new alarm (tier 1 and the routes' receivers)
    page            grade 1: the project manager is paged at once
    escalation-T    not acknowledged within the response time: tier T (2 supervisor, 3 project manager)
    renotify-K      the K-th reminder while still unacknowledged
    regraded-G      the alarm's grade changed to G
    cleared[-N]     the condition went away (the N-th time, from the second on)
    acked           someone acknowledged it (told to those who were escalated to)
    handling-overdue  not handled within the handling time (still active, or latched and not
                    reset): the next tier above those the response clock reached, once

Reasons are part of the log's unique key (alarm, receiver, reason), so each is sent once.
"""

from __future__ import annotations

RAISED = "raised"
PAGE = "page"
ACKED = "acked"
HANDLING_OVERDUE = "handling-overdue"
_ESCALATION, _RENOTIFY, _REGRADED, _CLEARED = "escalation", "renotify", "regraded", "cleared"


def escalation(tier: int) -> str:
    return f"{_ESCALATION}-{tier}"


def renotify(count: int) -> str:
    return f"{_RENOTIFY}-{count}"


def regraded(grade: int) -> str:
    return f"{_REGRADED}-{grade}"


def cleared(occurrence: int) -> str:
    return _CLEARED if occurrence <= 1 else f"{_CLEARED}-{occurrence}"


def parse(reason: str) -> tuple[str, int | None]:
    """`escalation-2` → ("escalation", 2); `raised` → ("raised", None)."""
    kind, _, number = reason.partition("-")
    return kind, int(number) if number.isdigit() else None


def asks_for_response(reason: str) -> bool:
    """Escalations and reminders ask someone to act on an unacknowledged alarm; once it is
    acknowledged they are void."""
    return parse(reason)[0] in (_ESCALATION, _RENOTIFY)


def called_to_act(reason: str) -> bool:
    """Paged, escalated to or reminded: those are told when someone acknowledges the alarm."""
    return reason == PAGE or asks_for_response(reason)


def is_cleared(reason: str) -> bool:
    return parse(reason)[0] == _CLEARED
