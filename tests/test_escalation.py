"""`plan`: which notifications an alarm calls for at a time, from the alarm row and the log alone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alarms.escalation import EscalationScheduler, escalates, plan, unhandled
from alarms.notify.config import parse_notify_config
from alarms.notify.message import describe
from alarms.notify.nflog import Entry, NotificationLog, Status
from alarms.routing import Router
from storage.state.database import StateDatabase
from storage.state.models import Alarm

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Asia/Shanghai
MIN = timedelta(minutes=1)

CONFIG = """
receivers:
  - {name: cr, channel: webhook, url: "http://h/cr"}
  - {name: cr-night, channel: webhook, url: "http://h/night"}
  - {name: sup, channel: webhook, url: "http://h/sup"}
  - {name: pm, channel: webhook, url: "http://h/pm", quiet_hours: [{start: "22:00", end: "07:00"}]}
  - {name: group, channel: wecom, url: "http://h/group"}
  - {name: quiet-group, channel: wecom, url: "http://h/q", send_resolved: false}
defaults:
  renotify_every: {2: 10m, 4: 30m}
  max_renotify: 2
  roster:
    tier_1:
      - {receivers: [cr], start: "07:00", end: "19:00"}
      - {receivers: [cr-night], start: "19:00", end: "07:00"}
    tier_2: [{receivers: [sup]}]
    tier_3: [{receivers: [pm]}]
sites:
  fast:
    response: {2: 2m}
routes:
  - match: {category: [gas]}
    receivers: [group, quiet-group]
  - match: {category: [noise]}
    receivers: [group]
    roster: false
"""


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(parse_notify_config(CONFIG))


def alarm(grade: int = 2, *, state: str = "unack", site: str = "s1", category: str = "fire", **fields: object) -> Alarm:
    values: dict[str, object] = {
        "id": 7, "site": site, "category": category, "grade": grade, "state": state, "raised_at": T0,
        "acked_at": None, "cleared_at": None, "condition_active": state in ("unack", "acked"), "repeat_count": 0,
        "shelved_until": None, "suppressed_by": None, "out_of_service": False,
    }
    values.update(fields)
    return Alarm(**values)


def due(a: Alarm, router: Router, at: datetime, history: Sequence[Entry] = ()) -> set[tuple[str, str]]:
    return {(d.receiver, d.reason) for d in plan(a, router, at, history)}


def sent(*pairs: tuple[str, str]) -> list[Entry]:
    return [Entry(i, 7, name, "webhook", reason, Status.SENT, 1, T0, None, T0, None)
            for i, (name, reason) in enumerate(pairs)]


def test_grade_2_timeline_tier_1_at_once_then_one_tier_per_response_time(router: Router) -> None:
    a = alarm(2)
    assert due(a, router, T0) == {("cr", "raised")}
    assert due(a, router, T0 + 5 * MIN - timedelta(seconds=1)) == {("cr", "raised")}
    assert due(a, router, T0 + 5 * MIN) == {("cr", "raised"), ("sup", "escalation-2")}
    assert due(a, router, T0 + 10 * MIN) == {("cr", "raised"), ("sup", "escalation-2"), ("pm", "escalation-3"),
                                             ("cr", "renotify-1")}  # sup and pm were told within the interval
    assert due(a, router, T0 + 20 * MIN) - due(a, router, T0 + 10 * MIN) == {
        ("cr", "renotify-2"), ("sup", "renotify-2"), ("pm", "renotify-2")}


def test_each_plan_item_is_due_when_its_clock_says(router: Router) -> None:
    items = {(d.receiver, d.reason): d.due_at for d in plan(alarm(2), router, T0 + 25 * MIN)}
    assert items[("cr", "raised")] == T0
    assert items[("sup", "escalation-2")] == T0 + 5 * MIN
    assert items[("pm", "escalation-3")] == T0 + 10 * MIN
    assert items[("cr", "renotify-2")] == T0 + 20 * MIN
    assert ("cr", "renotify-1") not in items  # only the latest reminder: missed ones are not replayed


def test_reminders_stop_at_max_renotify(router: Router) -> None:
    assert not {r for _, r in due(alarm(2), router, T0 + 30 * MIN)} & {"renotify-3"}
    assert {r for _, r in due(alarm(2), router, T0 + 3 * 60 * MIN)} == {"raised", "escalation-2", "escalation-3",
                                                                       "handling-overdue"}


def test_grade_1_pages_the_project_manager_at_once(router: Router) -> None:
    assert due(alarm(1), router, T0) == {("cr", "raised"), ("pm", "page")}
    later = due(alarm(1), router, T0 + 10 * MIN)
    assert ("pm", "escalation-3") not in later  # already paged
    assert ("sup", "escalation-2") in later


def test_site_response_time_overrides_the_default(router: Router) -> None:
    assert ("sup", "escalation-2") in due(alarm(2, site="fast"), router, T0 + 2 * MIN)
    assert ("sup", "escalation-2") not in due(alarm(2, site="s1"), router, T0 + 2 * MIN)


def test_general_grades_respond_within_15_minutes(router: Router) -> None:
    assert ("sup", "escalation-2") not in due(alarm(4), router, T0 + 14 * MIN)
    assert ("sup", "escalation-2") in due(alarm(4), router, T0 + 15 * MIN)


def test_the_on_duty_shift_at_the_due_time_is_told(router: Router) -> None:
    evening = T0 + timedelta(hours=8, minutes=58)  # raised 18:58 local; tier 1 changes shift at 19:00
    a = alarm(2, raised_at=evening)
    assert due(a, router, evening) == {("cr", "raised")}
    assert ("cr-night", "renotify-1") in due(a, router, evening + 10 * MIN)


def test_routes_add_receivers_and_can_turn_the_roster_off(router: Router) -> None:
    assert due(alarm(2, category="gas"), router, T0) == {("cr", "raised"), ("group", "raised"),
                                                         ("quiet-group", "raised")}
    assert due(alarm(1, category="noise"), router, T0 + 60 * MIN) == {("group", "raised")}


@pytest.mark.parametrize("fields", [
    {"shelved_until": T0 + 60 * MIN}, {"suppressed_by": "alarm 3"}, {"out_of_service": True},
])
def test_shelved_suppressed_and_out_of_service_alarms_get_nothing(router: Router, fields: dict[str, object]) -> None:
    a = alarm(1)
    for name, value in fields.items():
        setattr(a, name, value)
    assert not escalates(a, T0 + 30 * MIN)
    assert due(a, router, T0 + 30 * MIN) == set()


def test_an_expired_shelve_releases_what_is_due(router: Router) -> None:
    a = alarm(2, shelved_until=T0 + 7 * MIN)
    assert due(a, router, T0 + 6 * MIN) == set()
    assert due(a, router, T0 + 7 * MIN) == {("cr", "raised"), ("sup", "escalation-2")}


def test_acknowledged_alarms_stop_escalating_and_the_escalated_are_told(router: Router) -> None:
    a = alarm(2, state="acked", acked_at=T0 + 7 * MIN, acked_by="op1")
    history = sent(("cr", "raised"), ("sup", "escalation-2"))
    assert due(a, router, T0 + 20 * MIN, history) == {("cr", "raised"), ("sup", "acked")}  # no escalation-3
    assert due(a, router, T0 + 60 * MIN, history) - due(a, router, T0 + 20 * MIN, history) == {
        ("pm", "handling-overdue")}  # still active after the 30 minutes to handle it
    [notice] = [d for d in plan(a, router, T0 + 60 * MIN, history) if d.reason == "acked"]
    assert notice.due_at == T0 + 7 * MIN


def test_clearing_stops_escalation_and_tells_whoever_was_notified(router: Router) -> None:
    a = alarm(2, category="gas", state="rtn_unack", cleared_at=T0 + 3 * MIN)
    history = sent(("cr", "raised"), ("group", "raised"), ("quiet-group", "raised"))
    assert due(a, router, T0 + 30 * MIN, history) == {
        ("cr", "raised"), ("group", "raised"), ("quiet-group", "raised"), ("cr", "cleared"), ("group", "cleared")}
    again = alarm(2, state="normal", cleared_at=T0 + 40 * MIN, repeat_count=1)
    assert due(again, router, T0 + 41 * MIN, sent(("cr", "raised"), ("cr", "cleared"))) == {("cr", "cleared-2")}


def test_only_sent_notifications_earn_a_cleared_notice(router: Router) -> None:
    a = alarm(2, state="rtn_unack", cleared_at=T0 + 1 * MIN)
    assert ("cr", "cleared") not in due(a, router, T0 + 2 * MIN)  # the raise is still on its way


def test_a_latched_alarm_keeps_escalating_after_its_condition_goes(router: Router) -> None:
    a = alarm(1, latching=True, condition_active=False, cleared_at=T0 + 1 * MIN)
    assert ("sup", "escalation-2") in due(a, router, T0 + 5 * MIN, sent(("cr", "raised")))
    assert not any(reason.startswith("cleared") for _, reason in due(a, router, T0 + 5 * MIN, sent(("cr", "raised"))))


def test_quiet_hours_mute_general_grades_only(router: Router) -> None:
    night = T0 + timedelta(hours=13)  # 23:00 local
    general = {(d.receiver, d.reason): d.muted for d in plan(alarm(4, raised_at=night), router, night + 30 * MIN)}
    emergency = {(d.receiver, d.reason): d.muted for d in plan(alarm(2, raised_at=night), router, night + 10 * MIN)}
    assert general[("pm", "escalation-3")] is True
    assert general[("cr-night", "raised")] is False  # no quiet hours for the control room
    assert emergency[("pm", "escalation-3")] is False


# --- the handling clock: handle within 30 min (grades 1-2) or 4 h (grades 3-4) -----------------

def overdue(a: Alarm, router: Router, at: datetime) -> set[str]:
    return {receiver for receiver, reason in due(a, router, at) if reason == "handling-overdue"}


def test_an_acknowledged_alarm_still_active_after_the_handling_time_goes_to_the_next_tier(router: Router) -> None:
    a = alarm(2, state="acked", acked_at=T0 + 3 * MIN, acked_by="op1")  # acked before escalation-2
    assert overdue(a, router, T0 + 30 * MIN - timedelta(seconds=1)) == set()
    assert overdue(a, router, T0 + 30 * MIN) == {"sup"}
    [item] = [d for d in plan(a, router, T0 + 2 * 60 * MIN) if d.reason == "handling-overdue"]
    assert item.due_at == T0 + 30 * MIN


def test_handling_overdue_goes_above_the_tier_the_response_clock_reached(router: Router) -> None:
    assert overdue(alarm(2), router, T0 + 30 * MIN) == {"pm"}  # unacknowledged: tier 3 was reached at 10 min
    acked_late = alarm(2, state="acked", acked_at=T0 + 6 * MIN, acked_by="op1")  # after escalation-2
    assert overdue(acked_late, router, T0 + 30 * MIN) == {"pm"}
    assert overdue(alarm(1, state="acked", acked_at=T0 + MIN), router, T0 + 30 * MIN) == {"pm"}  # paged at once


def test_general_grades_have_four_hours_to_handle(router: Router) -> None:
    a = alarm(4, state="acked", acked_at=T0 + MIN, acked_by="op1")
    assert overdue(a, router, T0 + 4 * 60 * MIN - timedelta(seconds=1)) == set()
    assert overdue(a, router, T0 + 4 * 60 * MIN) == {"sup"}


@pytest.mark.parametrize(("fields", "expected"), [
    ({"state": "rtn_unack", "condition_active": False, "cleared_at": T0 + 20 * MIN}, set()),  # back to normal
    ({"state": "normal", "condition_active": False, "cleared_at": T0 + 20 * MIN}, set()),
    ({"state": "acked", "latching": True, "condition_active": False, "acked_at": T0 + MIN}, {"sup"}),  # not reset
    ({"state": "acked", "acked_at": T0 + MIN, "shelved_until": T0 + 60 * MIN}, set()),
    ({"state": "acked", "acked_at": T0 + MIN, "out_of_service": True}, set()),
    ({"state": "acked", "acked_at": T0 + MIN, "suppressed_by": "maintenance:1"}, set()),
])
def test_only_unhandled_alarms_are_overdue(router: Router, fields: dict[str, object], expected: set[str]) -> None:
    a = alarm(2, **fields)
    assert overdue(a, router, T0 + 31 * MIN) == expected
    assert unhandled(a, T0 + 31 * MIN) == bool(expected)


def test_handling_overdue_is_recorded_once_across_restarts(tmp_path: Path, router: Router) -> None:
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    with db.session() as session:
        row = alarm(2, state="acked", acked_at=T0 + 3 * MIN, acked_by="op1")
        row.id = None  # type: ignore[assignment]
        row.rule_id, row.source, row.family, row.device_id = "fire.x", "s1/fire/d1", "fire", "d1"
        row.message_zh = row.message_en = "x"
        row.updated_at = T0
        session.add(row)
    nflog = NotificationLog(db)

    def handling(scheduler: EscalationScheduler, minutes: int) -> list[str]:
        return [e.receiver for e in scheduler.run(T0 + minutes * MIN) if e.reason == "handling-overdue"]

    assert handling(EscalationScheduler(db, router, nflog), 29) == []
    assert handling(EscalationScheduler(db, router, nflog), 31) == ["sup"]
    assert handling(EscalationScheduler(db, router, nflog), 45) == []  # a restart: the log remembers
    assert [e.reason for e in nflog.entries(1)].count("handling-overdue") == 1
    db.dispose()


def test_handling_overdue_texts_in_both_languages() -> None:
    assert describe("handling-overdue", {"condition_active": True}) == (
        "超过处置时限仍未恢复正常，升级通知", "not handled in time (still not back to normal), escalated")
    assert describe("handling-overdue", {"condition_active": False}) == (
        "超过处置时限仍未复位，升级通知", "not handled in time (still not reset), escalated")
