"""The dispatcher's stages, the AlarmNotifier and the log, with an httpx.MockTransport (SQLite)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from alarms.escalation import EscalationScheduler
from alarms.events import AlarmEvent, alarm_view
from alarms.notify.channels import Channel, Outgoing
from alarms.notify.config import NotifyConfig, Receiver, parse_notify_config
from alarms.notify.dispatcher import Dispatcher
from alarms.notify.nflog import NewEntry, NotificationLog, Status
from alarms.notify.notifier import AlarmNotifier
from alarms.notify.setup import Notifications, build_notifications
from alarms.notify.worker import NotifyWorker
from core.clock import FakeClock
from storage.state.database import StateDatabase
from storage.state.models import Alarm

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
CONFIG = """
console_url: https://fmon.example.com
delivery: {max_attempts: 4, backoff_initial: 10s, backoff_factor: 3, backoff_max: 1m}
defaults:
  roster:
    tier_1: [{receivers: [cr]}]
    tier_2: [{receivers: [sup]}]
receivers:
  - {name: cr, channel: webhook, url: "http://hooks.test/cr"}
  - {name: sup, channel: webhook, url: "http://hooks.test/sup"}
  - {name: pm, channel: webhook, url: "http://hooks.test/pm", quiet_hours: [{start: "00:00"}]}
routes:
  - {match: {category: [gas]}, receivers: [pm]}
"""


class Hooks:
    """A MockTransport handler: records requests, answers with queued statuses (default 200)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses: dict[str, list[int]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queued = self.statuses.get(request.url.path, [])
        return httpx.Response(queued.pop(0) if queued else 200, json={})

    def events(self) -> list[tuple[str, str]]:
        taken = [(r.url.path.rsplit("/", 1)[1], json.loads(r.content)["event"]) for r in self.requests]
        self.requests.clear()
        return taken


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


def build(db: StateDatabase, hooks: Hooks, config: NotifyConfig | None = None) -> Notifications:
    client = httpx.Client(transport=httpx.MockTransport(hooks))
    return build_notifications(config or parse_notify_config(CONFIG), db, FakeClock(T0), client=client)


def add_alarm(db: StateDatabase, grade: int = 2, category: str = "fire", **fields: object) -> Alarm:
    with db.session() as session:
        values: dict[str, object] = {"source": "s1/gas/d1", **fields}
        alarm = Alarm(rule_id="r", site="s1", family="gas", device_id="d1", category=category, grade=grade,
                      state="unack", message_zh="测试", message_en="test", raised_at=T0, updated_at=T0, **values)
        session.add(alarm)
        session.flush()
        return alarm


def set_alarm(db: StateDatabase, alarm_id: int, **fields: object) -> None:
    with db.session() as session:
        alarm = session.get(Alarm, alarm_id)
        assert alarm is not None
        for name, value in fields.items():
            setattr(alarm, name, value)


def test_escalations_of_an_alarm_acknowledged_before_delivery_are_cancelled(db: StateDatabase, hooks: Hooks) -> None:
    notify, alarm = build(db, hooks), add_alarm(db)
    notify.scheduler.run(T0 + timedelta(minutes=5))  # raised and escalation-2 recorded, not yet sent
    set_alarm(db, alarm.id, state="acked", acked_at=T0 + timedelta(minutes=5), acked_by="op1")
    outcomes = {(o.receiver, o.reason): o for o in notify.dispatcher.run(T0 + timedelta(minutes=5))}
    assert outcomes[("cr", "raised")].status is Status.SENT
    assert outcomes[("sup", "escalation-2")].status is Status.CANCELLED
    assert outcomes[("sup", "escalation-2")].error == "alarm is acked and no longer escalates"
    assert hooks.events() == [("cr", "raised")]


def test_a_permanent_error_fails_at_once(db: StateDatabase, hooks: Hooks) -> None:
    notify, alarm = build(db, hooks), add_alarm(db)
    hooks.statuses["/cr"] = [404]
    notify.scheduler.run(T0)
    [outcome] = notify.dispatcher.run(T0)
    assert (outcome.status, outcome.attempts, outcome.error) == (Status.FAILED, 1, "attempt 1: HTTP 404: {}")
    assert notify.log.entries(alarm.id)[0].status is Status.FAILED


def test_backoff_follows_the_configured_factor_and_cap(db: StateDatabase, hooks: Hooks) -> None:
    notify = build(db, hooks)
    add_alarm(db)
    hooks.statuses["/cr"] = [500, 500, 500, 500]
    notify.scheduler.run(T0)
    now, waits = T0, []
    for _ in range(4):
        [outcome] = notify.dispatcher.run(now)
        if outcome.next_attempt_at is None:
            break
        waits.append((outcome.next_attempt_at - now).total_seconds())
        now = outcome.next_attempt_at
    assert waits == [10, 30, 60]  # 10 s × 3ⁿ, capped at 1 min
    assert outcome.status is Status.FAILED and outcome.attempts == 4


def test_a_receiver_removed_from_the_config_fails_with_its_name(db: StateDatabase, hooks: Hooks) -> None:
    alarm = add_alarm(db)
    NotificationLog(db).record([NewEntry(alarm.id, "gone", "webhook", "raised")], T0)
    [outcome] = build(db, hooks).dispatcher.run(T0)
    assert (outcome.status, outcome.error) == (Status.FAILED, "receiver 'gone' (webhook) is not configured")


def test_a_crashing_channel_is_retried_and_does_not_stop_the_others(db: StateDatabase, hooks: Hooks) -> None:
    class Broken:
        def send(self, receiver: Receiver, outgoing: Outgoing) -> None:
            raise RuntimeError("bug")

    notify = build(db, hooks)
    add_alarm(db, category="gas")
    notify.scheduler.run(T0)
    channels: dict[str, Channel] = {"webhook": Broken()}
    outcomes = Dispatcher(db, notify.log, notify.router, channels).run(T0)
    assert {o.status for o in outcomes} == {Status.PENDING}
    assert all(o.error == "attempt 1: RuntimeError: bug" for o in outcomes)


def test_muted_entries_are_never_sent(db: StateDatabase, hooks: Hooks) -> None:
    notify, alarm = build(db, hooks), add_alarm(db, grade=4, category="gas")
    notify.scheduler.run(T0)
    assert hooks.events() == [] and {o.receiver for o in notify.dispatcher.run(T0)} == {"cr"}
    assert {(e.receiver, e.status) for e in notify.log.entries(alarm.id)} == {("cr", Status.SENT),
                                                                             ("pm", Status.MUTED)}


def test_a_lost_claim_is_skipped(db: StateDatabase, hooks: Hooks) -> None:
    notify = build(db, hooks)
    add_alarm(db)
    notify.scheduler.run(T0)
    [entry] = notify.log.due(T0)
    assert notify.log.claim(entry, T0, T0 + timedelta(minutes=1)) is not None
    assert notify.log.claim(entry, T0, T0 + timedelta(minutes=1)) is None  # same snapshot: taken already
    assert notify.dispatcher.run(T0) == [] and hooks.events() == []


def test_the_notifier_queues_the_event_wakes_the_worker_and_records_on_drain(db: StateDatabase,
                                                                             hooks: Hooks) -> None:
    notify, alarm = build(db, hooks), add_alarm(db)
    woken: list[bool] = []
    notifier = AlarmNotifier(notify.scheduler, notify.log, FakeClock(T0), wake=lambda: woken.append(True))
    notifier(AlarmEvent("raised", alarm_view(alarm)))
    assert woken == [True] and notify.log.entries() == []  # the publisher never waits for the database
    assert [(e.receiver, e.reason) for e in notifier.drain(T0)] == [("cr", "raised")]
    assert notifier.handle(AlarmEvent("repeated", alarm_view(alarm))) == []


def test_a_regrade_is_told_to_everyone_notified(db: StateDatabase, hooks: Hooks) -> None:
    notify, alarm = build(db, hooks), add_alarm(db, grade=3, category="gas")
    notify.scheduler.run(T0)
    notify.dispatcher.run(T0)
    set_alarm(db, alarm.id, grade=1)
    with db.session() as session:
        view = alarm_view(session.get_one(Alarm, alarm.id))
    added = {(e.receiver, e.reason, e.muted) for e in notify.notifier.handle(AlarmEvent("regraded", view))}
    # pm's quiet hours held the grade-3 raise back; a grade-1 alarm reaches pm all the same
    assert added == {("cr", "regraded-1", False), ("pm", "regraded-1", False)}
    notify.dispatcher.run(T0)
    assert sorted(hooks.events()) == [("cr", "raised"), ("cr", "regraded-1"), ("pm", "regraded-1")]


def test_the_notifier_never_raises_into_the_publisher(db: StateDatabase, hooks: Hooks) -> None:
    notify = build(db, hooks)
    notify.notifier(AlarmEvent("raised", {"id": 999, "grade": 2}))  # no such alarm
    notify.notifier(AlarmEvent("regraded", {"grade": 2}))  # malformed
    assert notify.notifier.drain(T0) == []  # logged, not raised


def test_the_worker_sends_when_woken(db: StateDatabase, hooks: Hooks) -> None:
    notify = build(db, hooks)
    worker = NotifyWorker(FakeClock(T0), [notify.dispatcher.run], interval=60.0)  # only a wake makes it run again
    scheduler = EscalationScheduler(db, notify.router, notify.log, wake=worker.wake)
    worker.start()
    try:
        add_alarm(db)
        scheduler.run(T0)  # records and wakes
        deadline = time.monotonic() + 5
        while not hooks.requests and time.monotonic() < deadline:
            time.sleep(0.01)  # bounded polling for the other thread, not a timing assumption
        assert hooks.events() == [("cr", "raised")]
    finally:
        worker.stop()
        notify.stop()


def test_a_backlog_larger_than_a_batch_is_sent_in_one_run(db: StateDatabase, hooks: Hooks) -> None:
    notify = build(db, hooks)
    alarms = [add_alarm(db, source=f"s1/gas/d{n}") for n in range(5)]
    notify.scheduler.run(T0)
    small = Dispatcher(db, notify.log, notify.router, {"webhook": notify.dispatcher.channels["webhook"]}, batch=2)
    assert len(small.run(T0)) == len(alarms)
