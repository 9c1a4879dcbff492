"""Escalation and delivery end to end, against real receivers, on SQLite and PostgreSQL.

A real HTTP server on a free loopback port plays the webhook (checking fmon's HMAC signature),
the WeCom robot and the DingTalk robot (checking its `sign`); a real SMTP server (aiosmtpd) takes
the email. Time is a FakeClock: each step sets it, runs the escalation scheduler and the
dispatcher, and asserts what the receivers got in that window — Alertmanager's acceptance style.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from alarms.actions import Action, AlarmActions
from alarms.escalation import EscalationScheduler
from alarms.events import AlarmEvent
from alarms.notify.config import parse_notify_config
from alarms.notify.nflog import Status
from alarms.notify.setup import Notifications, build_notifications
from alarms.service import AlarmService
from core.clock import FakeClock
from core.domain import DeviceRef, Family, Reading
from rules.engine import RuleEngine
from rules.loader import rule_by_id
from storage.state.database import StateDatabase
from storage.state.models import Alarm
from tests.harness.process import HOST, free_port

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)  # Saturday 16:00 in Asia/Shanghai
SECRETS = {"control-room": "cr-secret", "flaky": "flaky-secret"}
DINGTALK_SECRET = "SECmanager"
POLL_S = 5.0

CONFIG = """
console_url: http://console.test
smtp: {{host: {host}, port: {smtp_port}, sender: fmon@example.com}}
delivery: {{max_attempts: 3, backoff_initial: 30s, backoff_factor: 2, timeout: 3s}}
defaults:
  renotify_every: {{2: 10m, 4: 1h}}
  roster:
    tier_1: [{{receivers: [control-room]}}]
    tier_2: [{{receivers: [supervisor]}}]
    tier_3: [{{receivers: [manager]}}]
receivers:
  - {{name: control-room, channel: webhook, url: "{http}/webhook/control-room", secret: cr-secret}}
  - {{name: supervisor, channel: email, to: [supervisor@example.com]}}
  - {{name: manager, channel: dingtalk, url: "{http}/dingtalk/manager?access_token=tok", secret: SECmanager}}
  - name: ops-group
    channel: wecom
    url: "{http}/wecom/ops-group?key=k1"
    quiet_hours: [{{start: "22:00", end: "07:00"}}]
  - {{name: flaky, channel: webhook, url: "{http}/webhook/flaky", secret: flaky-secret}}
routes:
  - match: {{category: [gas]}}
    receivers: [ops-group]
  - match: {{category: [pump]}}
    receivers: [flaky]
    roster: false
"""

Arrival = tuple[str, int, str | None]  # (receiver, alarm id, event when the channel carries it)


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def wait_until(condition: Callable[[], bool], timeout: float = POLL_S) -> None:
    """Bounded polling for real network effects (no sleeping for correctness)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


# --- the real receivers --------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    receiver: str
    kind: str  # webhook, wecom, dingtalk
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def alarm_id(self) -> int:
        if self.kind == "webhook":
            return int(self.body["alarm"]["id"])
        text = self.body["markdown"]["content" if self.kind == "wecom" else "text"]
        match = re.search(r"#/alarms/(\d+)", text)
        assert match is not None, text
        return int(match[1])


class Receivers:
    """Webhook (verifies fmon's signature), WeCom and DingTalk robots (verifies `sign`) on one port."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.failures: dict[str, deque[int]] = {}
        self.always_fail: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-receivers", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def take(self) -> list[Request]:
        with self._lock:
            taken, self.requests = self.requests, []
        return taken

    def answer(self, path: str, body: bytes, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        _, kind, receiver = path.split("/")
        queued = self.failures.get(receiver)
        if receiver in self.always_fail or queued:
            return (queued.popleft() if queued else 500), {"error": "receiver down"}
        document = json.loads(body)
        if kind == "webhook" and not _signed(SECRETS[receiver], headers, body):
            return 401, {"error": "bad signature"}
        if kind == "dingtalk" and query.get("sign") != _dingtalk_sign(query.get("timestamp", "")):
            return 200, {"errcode": 310000, "errmsg": "sign not match"}
        with self._lock:
            self.requests.append(Request(receiver, kind, query, headers, document))
        return 200, ({"ok": True} if kind == "webhook" else {"errcode": 0, "errmsg": "ok"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                status, reply = receivers.answer(parts.path, body, query, dict(self.headers.items()))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return None

        return Handler


def _signed(secret: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers.get("X-Fmon-Timestamp", "")
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Fmon-Signature", ""), f"sha256={digest}")


def _dingtalk_sign(timestamp: str) -> str:
    digest = hmac.new(DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Mailbox:
    """A real SMTP server (aiosmtpd) that keeps what it is sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname=HOST, port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd hook
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def take(self) -> list[EmailMessage]:
        with self._lock:
            taken, self.messages = self.messages, []
        return taken


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    server = Receivers()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'state.db'}"


# --- the rig: fmon's notification side, driven step by step --------------------------------------

class Rig:
    """The state database and the notification subsystem, rebuilt from scratch on `restart()`."""

    def __init__(self, url: str, receivers: Receivers, mailbox: Mailbox) -> None:
        self.url, self.receivers, self.mailbox = url, receivers, mailbox
        self.clock = FakeClock(T0)
        self.config = parse_notify_config(CONFIG.format(host=HOST, smtp_port=mailbox.port, http=receivers.base_url))
        receivers.take(), mailbox.take()
        self.db, self.notify = self._build()

    def _build(self) -> tuple[StateDatabase, Notifications]:
        db = StateDatabase(self.url)
        db.upgrade()
        return db, build_notifications(self.config, db, self.clock, client=httpx.Client())

    def restart(self) -> None:
        """What a process restart leaves: the database. Every object is new."""
        self.close()
        self.db, self.notify = self._build()

    def close(self) -> None:
        self.notify.stop()
        self.db.dispose()

    def raise_alarm(self, grade: int, category: str = "fire", at: datetime = T0, device: str = "d1") -> int:
        with self.db.session() as session:
            alarm = Alarm(rule_id=f"test.{category}", source=f"s1/gas/{device}", site="s1", family="gas",
                          device_id=device, category=category, grade=grade, state="unack", message_zh="测试告警",
                          message_en="test alarm", value=1.0, raised_at=at, updated_at=at, building="B1", zone="Z1")
            session.add(alarm)
            session.flush()
            return alarm.id

    def ack(self, alarm_id: int) -> None:
        AlarmActions(self.db, self.clock, lambda _event: None).perform(alarm_id, Action.ACK, "op1")

    def at(self, offset: timedelta, *, send: bool = True) -> list[tuple[str, str]]:
        """Set the clock to T0 + offset, run the scheduler and the dispatcher; return (receiver,
        reason) of what was delivered, after checking the receivers got exactly that."""
        now = T0 + offset
        self.clock.set(now)
        self.notify.scheduler.run(now)
        return self.dispatch() if send else []

    def dispatch(self) -> list[tuple[str, str]]:
        outcomes = [o for o in self.notify.dispatcher.run(self.clock.now()) if o.status is Status.SENT]
        arrived = self.arrivals()
        assert sorted((r, a) for r, a, _ in arrived) == sorted((o.receiver, o.alarm_id) for o in outcomes)
        for receiver, alarm_id, event in arrived:
            assert event is None or any((o.receiver, o.alarm_id, o.reason) == (receiver, alarm_id, event)
                                        for o in outcomes)
        return sorted((o.receiver, o.reason) for o in outcomes)

    def arrivals(self) -> list[Arrival]:
        http: list[Arrival] = [(r.receiver, r.alarm_id, r.headers.get("X-Fmon-Event")) for r in self.receivers.take()]
        mail: list[Arrival] = [(m["To"].split("@")[0], int(m["X-Fmon-Alarm"]), m["X-Fmon-Event"])
                               for m in self.mailbox.take()]
        return http + mail


@pytest.fixture
def rig(state_url: str, receivers: Receivers, mailbox: Mailbox) -> Iterator[Rig]:
    setup = Rig(state_url, receivers, mailbox)
    yield setup
    setup.close()
    receivers.always_fail.clear()
    receivers.failures.clear()


# --- the tests -----------------------------------------------------------------------------------

def test_grade_2_escalates_tier_by_tier_reminds_and_stops_when_acknowledged(rig: Rig) -> None:
    alarm_id = rig.raise_alarm(grade=2)
    assert rig.at(minutes(0)) == [("control-room", "raised")]
    assert rig.at(minutes(4.9)) == []
    assert rig.at(minutes(5)) == [("supervisor", "escalation-2")]
    assert rig.at(minutes(9.9)) == []
    assert rig.at(minutes(10)) == [("control-room", "renotify-1"), ("manager", "escalation-3")]
    assert rig.at(minutes(19)) == []
    assert rig.at(minutes(20)) == [("control-room", "renotify-2"), ("manager", "renotify-2"),
                                   ("supervisor", "renotify-2")]
    rig.clock.set(T0 + minutes(23))
    rig.ack(alarm_id)
    # whoever was paged, escalated to or reminded is told it is in hand
    assert rig.at(minutes(23)) == [("control-room", "acked"), ("manager", "acked"), ("supervisor", "acked")]
    assert rig.at(minutes(29.9)) == []
    # acknowledged but still active after the 30 minutes to handle it: the tier above, once
    assert rig.at(minutes(30)) == [("manager", "handling-overdue")]
    assert rig.at(minutes(90)) == []
    statuses = {(e.receiver, e.reason): e.status for e in rig.notify.log.entries(alarm_id)}
    assert set(statuses.values()) == {Status.SENT} and len(statuses) == 11


def test_messages_reach_real_mail_and_webhook_bilingual_and_signed(rig: Rig) -> None:
    alarm_id = rig.raise_alarm(grade=2)
    rig.clock.set(T0)
    rig.notify.scheduler.run(T0)
    rig.notify.dispatcher.run(T0)
    [request] = rig.receivers.take()  # the server answered 200: the signature checked out
    assert request.body["alarm"]["id"] == alarm_id and request.body["event"] == "raised"
    assert request.body["link"] == f"http://console.test/#/alarms/{alarm_id}"
    rig.clock.set(T0 + minutes(5))
    rig.notify.scheduler.run(rig.clock.now())
    rig.notify.dispatcher.run(rig.clock.now())
    [mail] = rig.mailbox.take()
    assert mail["Subject"].startswith("[fmon] 【二级 重大】超过响应时限未确认")
    assert "[Grade 2 (major)]" in mail["Subject"]
    body = mail.get_content()
    assert body.index("告警：测试告警") < body.index("Alarm: test alarm")
    assert "发生时间：2026-11-21 16:00:00 (Asia/Shanghai)" in body
    assert f"http://console.test/#/alarms/{alarm_id}" in body


def test_quiet_hours_silence_grade_4_but_never_grade_2(rig: Rig) -> None:
    night = T0 + timedelta(hours=7)  # 23:00 in Shanghai
    general, emergency = rig.raise_alarm(4, "gas", night, "g4"), rig.raise_alarm(2, "gas", night, "g2")
    delivered = rig.at(timedelta(hours=7))
    assert delivered == [("control-room", "raised"), ("control-room", "raised"), ("ops-group", "raised")]
    [muted] = [e for e in rig.notify.log.entries(general) if e.receiver == "ops-group"]
    [told] = [e for e in rig.notify.log.entries(emergency) if e.receiver == "ops-group"]
    assert (muted.status, muted.attempts, told.status) == (Status.MUTED, 0, Status.SENT)


def test_wecom_and_dingtalk_get_their_markdown_shapes_and_dingtalk_is_signed(rig: Rig) -> None:
    alarm_id = rig.raise_alarm(grade=1, category="gas")
    rig.clock.set(T0)
    rig.notify.scheduler.run(T0)
    outcomes = rig.notify.dispatcher.run(T0)
    assert sorted((o.receiver, o.reason, o.status) for o in outcomes) == [
        ("control-room", "raised", Status.SENT), ("manager", "page", Status.SENT), ("ops-group", "raised", Status.SENT)]
    requests = {r.receiver: r for r in rig.receivers.take()}
    wecom, dingtalk = requests["ops-group"], requests["manager"]
    assert wecom.query == {"key": "k1"}
    assert set(wecom.body) == {"msgtype", "markdown"} and wecom.body["msgtype"] == "markdown"
    assert list(wecom.body["markdown"]) == ["content"]
    assert wecom.body["markdown"]["content"].startswith("### 【一级 特别重大】新告警")
    assert set(dingtalk.query) == {"access_token", "timestamp", "sign"}  # the server checked the sign
    assert dingtalk.query["timestamp"] == str(int(T0.timestamp() * 1000))
    assert dingtalk.body["msgtype"] == "markdown" and set(dingtalk.body["markdown"]) == {"title", "text"}
    assert "通知项目经理" in dingtalk.body["markdown"]["title"]
    assert f"#/alarms/{alarm_id}" in dingtalk.body["markdown"]["text"]


def test_a_wrong_dingtalk_secret_is_retried_then_recorded_as_failed(rig: Rig) -> None:
    text = CONFIG.replace("secret: SECmanager", "secret: SECwrong")
    rig.config = parse_notify_config(text.format(host=HOST, smtp_port=rig.mailbox.port, http=rig.receivers.base_url))
    rig.restart()
    alarm_id = rig.raise_alarm(grade=1)
    for offset in (0, 0.5, 1.5):
        rig.at(minutes(offset))
    [page] = [e for e in rig.notify.log.entries(alarm_id) if e.reason == "page"]
    assert (page.status, page.attempts) == (Status.FAILED, 3)
    assert page.error is not None and "310000" in page.error


def test_retries_back_off_exponentially_then_the_failure_is_recorded(rig: Rig) -> None:
    rig.receivers.always_fail.add("flaky")
    alarm_id = rig.raise_alarm(grade=3, category="pump")
    assert rig.at(minutes(0)) == []
    [entry] = rig.notify.log.entries(alarm_id)
    assert (entry.status, entry.attempts, entry.next_attempt_at) == (Status.PENDING, 1, T0 + timedelta(seconds=30))
    assert entry.error == "attempt 1: HTTP 500: {\"error\": \"receiver down\"}"
    assert rig.at(timedelta(seconds=29)) == []
    assert rig.at(timedelta(seconds=30)) == []  # attempt 2
    [entry] = rig.notify.log.entries(alarm_id)
    assert (entry.attempts, entry.next_attempt_at) == (2, T0 + timedelta(seconds=90))
    assert rig.at(timedelta(seconds=89)) == []
    assert rig.at(timedelta(seconds=90)) == []  # attempt 3: the last
    [entry] = rig.notify.log.entries(alarm_id)
    assert (entry.status, entry.attempts, entry.next_attempt_at) == (Status.FAILED, 3, None)
    assert entry.error is not None and entry.error.startswith("attempt 3: HTTP 500")
    assert rig.at(minutes(60)) == []


def test_a_receiver_that_recovers_gets_the_notification_once(rig: Rig) -> None:
    rig.receivers.failures["flaky"] = deque([503, 500])
    alarm_id = rig.raise_alarm(grade=3, category="pump")
    assert rig.at(minutes(0)) == []
    assert rig.at(timedelta(seconds=30)) == []
    assert rig.at(timedelta(seconds=90)) == [("flaky", "raised")]
    [entry] = rig.notify.log.entries(alarm_id)
    assert (entry.status, entry.attempts, entry.sent_at) == (Status.SENT, 3, T0 + timedelta(seconds=90))


def test_a_restart_mid_timer_neither_repeats_nor_skips(rig: Rig) -> None:
    rig.raise_alarm(grade=2)
    assert rig.at(minutes(0)) == [("control-room", "raised")]
    assert rig.at(minutes(3)) == []
    rig.restart()
    assert rig.at(minutes(3)) == []  # the raise is not sent again
    assert rig.at(minutes(5)) == [("supervisor", "escalation-2")]  # the 5-minute clock survived
    rig.restart()
    assert rig.at(minutes(5)) == []
    assert rig.at(minutes(10), send=False) == []  # decided and recorded, then the process dies
    rig.restart()
    assert rig.dispatch() == [("control-room", "renotify-1"), ("manager", "escalation-3")]
    rig.restart()
    assert rig.at(minutes(10)) == []


def test_escalations_missed_while_down_are_sent_once_after_the_restart(rig: Rig) -> None:
    rig.raise_alarm(grade=2)
    assert rig.at(minutes(0)) == [("control-room", "raised")]
    rig.restart()
    assert rig.at(minutes(11)) == [("control-room", "renotify-1"), ("manager", "escalation-3"),
                                   ("supervisor", "escalation-2")]
    assert rig.at(minutes(11)) == []


def test_a_sender_that_dies_mid_send_is_retried_after_its_lease(rig: Rig) -> None:
    alarm_id = rig.raise_alarm(grade=2)
    rig.at(minutes(0), send=False)
    [entry] = rig.notify.log.entries(alarm_id)
    assert rig.notify.log.claim(entry, T0, T0 + minutes(1)) is not None  # claimed, then the process dies
    rig.restart()
    assert rig.dispatch() == []  # still leased
    rig.clock.set(T0 + minutes(1))
    assert rig.dispatch() == [("control-room", "raised")]
    [entry] = rig.notify.log.entries(alarm_id)
    assert (entry.status, entry.attempts) == (Status.SENT, 2)


def test_two_schedulers_on_one_database_record_each_notification_once(rig: Rig) -> None:
    alarm_id = rig.raise_alarm(grade=1)
    other = EscalationScheduler(rig.db, rig.notify.router, rig.notify.log)
    first, second = rig.notify.scheduler.run(T0 + minutes(10)), other.run(T0 + minutes(10))
    assert len(first) == 5 and second == []
    assert len(rig.notify.log.entries(alarm_id)) == 5


def test_alarm_events_notify_at_once_through_the_worker(rig: Rig) -> None:
    """The wiring runtime uses: the alarm service publishes to the AlarmNotifier, which records
    and wakes the dispatcher thread; nothing waits for the scheduler's tick."""
    events: list[AlarmEvent] = []

    def publish(event: AlarmEvent) -> None:
        events.append(event)
        rig.notify.notifier(event)

    rig.notify.start()
    service = AlarmService(rig.db, rig.clock, publish)
    engine = RuleEngine([rule_by_id("gas.lel_l2")])
    service.apply(engine.process([Reading(DeviceRef("s1", Family.GAS, "kitchen-1"), T0, {"lel_pct": 60.0})]))
    assert [e.event for e in events] == ["raised"]
    alarm_id = events[0].alarm["id"]
    wait_until(lambda: {e.status for e in rig.notify.log.entries(alarm_id)} == {Status.SENT})
    assert {(e.receiver, e.reason) for e in rig.notify.log.entries(alarm_id)} == {
        ("control-room", "raised"), ("manager", "page"), ("ops-group", "raised")}
    assert sorted((r, a, e) for r, a, e in rig.arrivals()) == [
        ("control-room", alarm_id, "raised"), ("manager", alarm_id, None), ("ops-group", alarm_id, None)]
