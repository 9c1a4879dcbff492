"""Channels and messages, with the transport injected (httpx.MockTransport, a stub SMTP session)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from alarms.notify.channels import (
    DeliveryError,
    DingTalkChannel,
    EmailChannel,
    Outgoing,
    WebhookChannel,
    WeComChannel,
    dingtalk_sign,
    truncate,
    webhook_signature,
)
from alarms.notify.config import Receiver, Smtp
from alarms.notify.message import render
from core.clock import FakeClock

NOW = datetime(2026, 11, 21, 8, 10, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
ALARM: dict[str, Any] = {
    "id": 42, "site": "lakeside", "family": "gas", "device_id": "kitchen-3", "category": "gas", "grade": 1,
    "state": "unack", "message_zh": "厨房可燃气体浓度 32 %LEL", "message_en": "kitchen gas at 32 %LEL",
    "raised_at": "2026-11-21T08:00:00Z", "building": "B2", "zone": "1F", "acked_by": None,
}
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def outgoing(reason: str = "raised", alarm: dict[str, Any] | None = None) -> Outgoing:
    view = alarm or ALARM
    message = render(view, reason, timezone=SHANGHAI, console_url="https://fmon.example.com/", now=NOW)
    return Outgoing(9, reason, 1, view, message)


def receiver(channel: str, **fields: Any) -> Receiver:
    return Receiver.model_validate({"name": f"r-{channel}", "channel": channel, **fields})


def capture(requests: list[httpx.Request], reply: dict[str, Any] | None = None, status: int = 200) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, json=reply if reply is not None else {"ok": True})

    return handle


# --- messages ------------------------------------------------------------------------------------

def test_messages_are_bilingual_zh_first_in_local_time_with_a_link() -> None:
    message = outgoing().message
    assert message.text.index("一级 特别重大") < message.text.index("Grade 1 (critical)")
    assert message.text.index("厨房可燃气体浓度") < message.text.index("kitchen gas")
    assert "发生时间：2026-11-21 16:00:00 (Asia/Shanghai)" in message.text
    assert "Raised: 2026-11-21 16:00:00 (Asia/Shanghai)" in message.text
    assert "项目 lakeside · 楼栋 B2 · 区域 1F · 设备 gas/kitchen-3" in message.text
    assert "已持续 10 分钟" in message.text and "open for 10 min" in message.text
    assert message.link == "https://fmon.example.com/#/alarms/42"
    assert message.title.startswith("【一级 特别重大】新告警：厨房可燃气体浓度")
    assert message.markdown.startswith("### 【一级 特别重大】新告警")


@pytest.mark.parametrize(("reason", "zh", "en"), [
    ("page", "通知项目经理", "paging the project manager"),
    ("escalation-2", "升级通知第2级（主管）", "escalated to tier 2 (supervisor)"),
    ("escalation-3", "第3级（项目经理）", "tier 3 (project manager)"),
    ("renotify-4", "第4次提醒", "reminder 4"),
    ("regraded-2", "等级变更为二级 重大", "grade changed to Grade 2 (major)"),
    ("cleared-2", "告警已恢复", "returned to normal"),
])
def test_each_reason_is_described_in_both_languages(reason: str, zh: str, en: str) -> None:
    text = outgoing(reason).message.text
    assert zh in text and en in text


def test_acknowledgement_names_who() -> None:
    text = outgoing("acked", {**ALARM, "state": "acked", "acked_by": "wang.li"}).message.text
    assert "已被 wang.li 确认" in text and "acknowledged by wang.li" in text


def test_truncate_keeps_whole_characters() -> None:
    assert truncate("告警" * 10, 10) == "告警…"
    assert truncate("short", 10) == "short"


# --- webhook -------------------------------------------------------------------------------------

def test_webhook_posts_the_alarm_signed_with_a_timestamp() -> None:
    requests: list[httpx.Request] = []
    channel = WebhookChannel(client(capture(requests)), FakeClock(NOW), timeout=5)
    channel.send(receiver("webhook", url="https://hooks.example/fmon", secret="s3cret"), outgoing("escalation-2"))
    [request] = requests
    timestamp, body = request.headers["X-Fmon-Timestamp"], request.content
    assert timestamp == str(int(NOW.timestamp()))
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert request.headers["X-Fmon-Signature"] == f"sha256={expected}"
    assert request.headers["X-Fmon-Event"] == "escalation-2"
    document = json.loads(body)
    assert (document["event"], document["alarm"], document["notification"]["id"]) == ("escalation-2", ALARM, 9)
    assert document["link"] == "https://fmon.example.com/#/alarms/42"
    assert document["message"]["text"].startswith("【一级 特别重大】")


def test_webhook_without_a_secret_is_not_signed() -> None:
    requests: list[httpx.Request] = []
    WebhookChannel(client(capture(requests)), FakeClock(NOW), 5).send(receiver("webhook", url="http://h/x"), outgoing())
    assert "X-Fmon-Signature" not in requests[0].headers


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (503, False), (429, False), (404, True), (401, True)])
def test_http_errors_are_delivery_errors(status: int, permanent: bool) -> None:
    channel = WebhookChannel(client(capture([], status=status)), FakeClock(NOW), 5)
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
        channel.send(receiver("webhook", url="http://h/x"), outgoing())
    assert caught.value.permanent is permanent


def test_network_errors_are_retryable_and_never_show_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    url = "https://oapi.dingtalk.com/robot/send?access_token=TOPSECRET"
    with pytest.raises(DeliveryError) as caught:
        WebhookChannel(client(refuse), FakeClock(NOW), 5).send(receiver("webhook", url=url), outgoing())
    assert not caught.value.permanent
    assert "TOPSECRET" not in str(caught.value) and "ConnectError" in str(caught.value)


def test_webhook_signature_helper_matches_the_documented_recipe() -> None:
    digest = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert webhook_signature("k", "1700000000", b"{}") == f"sha256={digest}"


# --- group robots --------------------------------------------------------------------------------

def test_wecom_sends_markdown_content() -> None:
    requests: list[httpx.Request] = []
    channel = WeComChannel(client(capture(requests, {"errcode": 0, "errmsg": "ok"})), 5)
    channel.send(receiver("wecom", url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"), outgoing())
    [request] = requests
    body = json.loads(request.content)
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"content"}
    assert body["markdown"]["content"].startswith("### 【一级 特别重大】新告警")
    assert request.url.params["key"] == "K"


def test_wecom_content_is_cut_to_the_api_limit() -> None:
    requests: list[httpx.Request] = []
    long_alarm = {**ALARM, "message_zh": "很长" * 3000}
    WeComChannel(client(capture(requests, {"errcode": 0})), 5).send(receiver("wecom", url="http://h/w"),
                                                                    outgoing(alarm=long_alarm))
    assert len(json.loads(requests[0].content)["markdown"]["content"].encode()) <= 4096


def test_a_robot_error_code_is_a_delivery_error() -> None:
    channel = WeComChannel(client(capture([], {"errcode": 45009, "errmsg": "api freq out of limit"})), 5)
    with pytest.raises(DeliveryError, match="45009"):
        channel.send(receiver("wecom", url="http://h/w"), outgoing())


def test_dingtalk_signs_with_timestamp_and_sign_query_parameters() -> None:
    requests: list[httpx.Request] = []
    channel = DingTalkChannel(client(capture(requests, {"errcode": 0, "errmsg": "ok"})), FakeClock(NOW), 5)
    url = "https://oapi.dingtalk.com/robot/send?access_token=T"
    channel.send(receiver("dingtalk", url=url, secret="SECabc"), outgoing())
    [request] = requests
    query = parse_qs(urlsplit(str(request.url)).query)
    timestamp = query["timestamp"][0]
    assert query["access_token"] == ["T"] and timestamp == str(int(NOW.timestamp() * 1000))
    expected = base64.b64encode(hmac.new(b"SECabc", f"{timestamp}\nSECabc".encode(), hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected] == [dingtalk_sign("SECabc", timestamp)]
    body = json.loads(request.content)
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"].startswith("【一级 特别重大】")


def test_dingtalk_without_a_secret_sends_no_signature() -> None:
    requests: list[httpx.Request] = []
    channel = DingTalkChannel(client(capture(requests, {"errcode": 0})), FakeClock(NOW), 5)
    channel.send(receiver("dingtalk", url="https://oapi.dingtalk.com/robot/send?access_token=T"), outgoing())
    assert set(requests[0].url.params) == {"access_token"}


# --- email ---------------------------------------------------------------------------------------

class StubSmtp:
    """Stands in for smtplib.SMTP: records messages, or raises what it is told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[EmailMessage] = []
        self.error = error

    def __enter__(self) -> StubSmtp:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def send_message(self, message: EmailMessage) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(message)


SMTP = Smtp(host="127.0.0.1", port=2525, sender="fmon@example.com")


def email_channel(stub: StubSmtp) -> EmailChannel:
    return EmailChannel(SMTP, FakeClock(NOW), 5, lambda _smtp, _timeout: stub)  # type: ignore[arg-type,return-value]


def test_email_is_bilingual_and_threads_per_alarm() -> None:
    stub = StubSmtp()
    email_channel(stub).send(receiver("email", to=["a@example.com", "b@example.com"]), outgoing("escalation-2"))
    [mail] = stub.sent
    assert mail["To"] == "a@example.com, b@example.com"
    assert mail["Subject"].startswith("[fmon] 【一级 特别重大】超过响应时限未确认")
    assert "[Grade 1 (critical)] not acknowledged in time" in mail["Subject"]
    assert mail["References"] == "<alarm-42@fmon>" and mail["X-Fmon-Event"] == "escalation-2"
    body = mail.get_content()
    assert body.index("告警：厨房") < body.index("Alarm: kitchen")


@pytest.mark.parametrize(("error", "permanent"), [
    (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no such user")}), True),
    (smtplib.SMTPDataError(554, b"rejected"), True),
    (smtplib.SMTPDataError(451, b"try later"), False),
    (smtplib.SMTPServerDisconnected("gone"), False),
    (ConnectionRefusedError(111, "Connection refused"), False),
])
def test_smtp_errors_are_delivery_errors(error: Exception, permanent: bool) -> None:
    with pytest.raises(DeliveryError) as caught:
        email_channel(StubSmtp(error)).send(receiver("email", to=["a@example.com"]), outgoing())
    assert caught.value.permanent is permanent


def test_email_without_a_mail_server_fails_permanently() -> None:
    channel = EmailChannel(None, FakeClock(NOW), 5)
    with pytest.raises(DeliveryError, match="no smtp section") as caught:
        channel.send(receiver("email", to=["a@example.com"]), outgoing())
    assert caught.value.permanent


def test_signature_timestamps_follow_the_injected_clock() -> None:
    requests: list[httpx.Request] = []
    clock = FakeClock(NOW)
    channel = WebhookChannel(client(capture(requests)), clock, 5)
    clock.advance(delta=timedelta(hours=1))
    channel.send(receiver("webhook", url="http://h/x", secret="k"), outgoing())
    assert requests[0].headers["X-Fmon-Timestamp"] == str(int((NOW + timedelta(hours=1)).timestamp()))
