"""Channels: how one notification reaches one receiver. Webhook, email, WeCom and DingTalk.

    webhook   POST JSON {version, event, notification, alarm, message, link, sent_at};
              headers X-Fmon-Timestamp (unix seconds) and, with a secret,
              X-Fmon-Signature: sha256=hex(HMAC-SHA256(secret, f"{timestamp}.{body}"))
    email     SMTP (smtplib), plain text, zh-CN then English; threads per alarm
    wecom     企业微信 group robot: {"msgtype": "markdown", "markdown": {"content": …}}
    dingtalk  钉钉 group robot: {"msgtype": "markdown", "markdown": {"title", "text"}}; with a
              secret, query `timestamp` (ms) and `sign` = base64(HMAC-SHA256(secret, f"{ts}\\n{secret}"))

HTTP goes through an injected `httpx.Client` (tests pass one with a `MockTransport`). Every
failure is translated here into `DeliveryError`, whose `permanent` flag tells the dispatcher not
to retry (an HTTP 4xx, a refused recipient). Messages never contain the url: robot urls carry
their access token. Not for deciding whether or when to send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol

import httpx
import orjson

from alarms.notify.config import NotifyConfig, Receiver, Smtp
from alarms.notify.message import Message
from core.clock import Clock
from core.errors import FmonError

WEBHOOK_VERSION = 1
WECOM_MAX_BYTES = 4096  # the robot API's limit on markdown content
DINGTALK_MAX_BYTES = 18_000
_RETRYABLE_4XX = (408, 425, 429)


class DeliveryError(FmonError):
    """A channel could not deliver a notification. `permanent`: trying again will not help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One notification about to be sent: the log entry's identity, the alarm and its text."""

    notification_id: int
    reason: str
    attempt: int
    alarm: Mapping[str, Any]
    message: Message


class Channel(Protocol):
    """Delivers to one kind of receiver; raises `DeliveryError` when it cannot."""

    def send(self, receiver: Receiver, outgoing: Outgoing) -> None: ...


def build_channels(config: NotifyConfig, client: httpx.Client, clock: Clock,
                   connect_smtp: SmtpConnect | None = None) -> dict[str, Channel]:
    """One channel per kind, sharing the HTTP client."""
    timeout = config.delivery.timeout.total_seconds()
    return {
        "webhook": WebhookChannel(client, clock, timeout),
        "wecom": WeComChannel(client, timeout),
        "dingtalk": DingTalkChannel(client, clock, timeout),
        "email": EmailChannel(config.smtp, clock, timeout, connect_smtp or connect),
    }


# --- signatures ----------------------------------------------------------------------------------

def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` over `{timestamp}.{body}`: binding the time stops replays of old bodies."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """DingTalk's robot signature (before URL encoding, which httpx does)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# --- HTTP channels -------------------------------------------------------------------------------

class WebhookChannel:
    """Generic JSON webhook, signed with the receiver's secret."""

    def __init__(self, client: httpx.Client, clock: Clock, timeout: float) -> None:
        self._client, self._clock, self._timeout = client, clock, timeout

    def send(self, receiver: Receiver, outgoing: Outgoing) -> None:
        now = self._clock.now()
        body = orjson.dumps({
            "version": WEBHOOK_VERSION, "event": outgoing.reason, "alarm": dict(outgoing.alarm),
            "notification": {"id": outgoing.notification_id, "receiver": receiver.name, "reason": outgoing.reason,
                             "attempt": outgoing.attempt},
            "message": {"title": outgoing.message.title, "text": outgoing.message.text},
            "link": outgoing.message.link, "sent_at": now.isoformat().replace("+00:00", "Z"),
        })
        timestamp = str(int(now.timestamp()))
        headers = {"Content-Type": "application/json", "X-Fmon-Timestamp": timestamp,
                   "X-Fmon-Event": outgoing.reason, "X-Fmon-Notification-Id": str(outgoing.notification_id)}
        if receiver.secret is not None:
            headers["X-Fmon-Signature"] = webhook_signature(receiver.secret.get_secret_value(), timestamp, body)
        _post(self._client, _url(receiver), body, headers, None, self._timeout)


class WeComChannel:
    """企业微信 group robot, markdown message."""

    def __init__(self, client: httpx.Client, timeout: float) -> None:
        self._client, self._timeout = client, timeout

    def send(self, receiver: Receiver, outgoing: Outgoing) -> None:
        content = truncate(outgoing.message.markdown, WECOM_MAX_BYTES)
        body = orjson.dumps({"msgtype": "markdown", "markdown": {"content": content}})
        _robot_reply(_post(self._client, _url(receiver), body, _JSON, None, self._timeout))


class DingTalkChannel:
    """钉钉 group robot, markdown message, signed when the receiver has a secret."""

    def __init__(self, client: httpx.Client, clock: Clock, timeout: float) -> None:
        self._client, self._clock, self._timeout = client, clock, timeout

    def send(self, receiver: Receiver, outgoing: Outgoing) -> None:
        message = outgoing.message
        body = orjson.dumps({"msgtype": "markdown", "markdown": {
            "title": truncate(message.title, 200), "text": truncate(message.markdown, DINGTALK_MAX_BYTES)}})
        params = None
        if receiver.secret is not None:
            timestamp = str(int(self._clock.now().timestamp() * 1000))
            params = {"timestamp": timestamp, "sign": dingtalk_sign(receiver.secret.get_secret_value(), timestamp)}
        _robot_reply(_post(self._client, _url(receiver), body, _JSON, params, self._timeout))


_JSON = {"Content-Type": "application/json; charset=utf-8"}


def _url(receiver: Receiver) -> str:
    if receiver.url is None:  # the config refuses this; keep mypy and a hand-built Receiver honest
        raise DeliveryError(f"receiver {receiver.name} has no url", permanent=True)
    return receiver.url


def _post(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str],
          params: Mapping[str, str] | None, timeout: float) -> httpx.Response:
    # Merge into the url's own query (the robot's access_token): httpx's `params=` would replace it.
    target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
    try:
        response = client.post(target, content=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise DeliveryError(f"no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {_redact(str(exc), url)}") from None
    if response.status_code >= 300:
        code = response.status_code
        permanent = 400 <= code < 500 and code not in _RETRYABLE_4XX
        raise DeliveryError(f"HTTP {code}: {_redact(response.text[:200], url)}", permanent=permanent)
    return response


def _robot_reply(response: httpx.Response) -> None:
    """Group robots answer HTTP 200 with {"errcode": 0, "errmsg": "ok"}; anything else failed."""
    try:
        reply = response.json()
    except ValueError:
        raise DeliveryError(f"robot answered something other than JSON: {response.text[:200]!r}") from None
    if not isinstance(reply, dict) or reply.get("errcode", 0) != 0:
        raise DeliveryError(f"robot refused: {reply!r}"[:300])


def _redact(text: str, url: str) -> str:
    return text.replace(url, "<url>").replace(url.split("?", 1)[0], "<url>")


def truncate(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, on a character boundary, marked with …."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes - 3].decode(errors="ignore") + "…"


# --- email ---------------------------------------------------------------------------------------

SmtpConnect = Callable[[Smtp, float], smtplib.SMTP]


def connect(smtp: Smtp, timeout: float) -> smtplib.SMTP:
    """An SMTP session: TLS from the start (`ssl`) or upgraded (`starttls`), logged in if configured."""
    client = (smtplib.SMTP_SSL if smtp.ssl else smtplib.SMTP)(smtp.host, smtp.port, timeout=timeout)
    try:
        if smtp.starttls:
            client.starttls()
        if smtp.username and smtp.password:
            client.login(smtp.username, smtp.password.get_secret_value())
    except BaseException:
        client.close()
        raise
    return client


class EmailChannel:
    """Plain-text email, zh-CN first, through the configured SMTP server."""

    def __init__(self, smtp: Smtp | None, clock: Clock, timeout: float, connect_smtp: SmtpConnect = connect) -> None:
        self._smtp, self._clock, self._timeout, self._connect = smtp, clock, timeout, connect_smtp

    def send(self, receiver: Receiver, outgoing: Outgoing) -> None:
        if self._smtp is None:
            raise DeliveryError("no smtp section in the notification config", permanent=True)
        mail = self._compose(self._smtp, receiver, outgoing)
        try:
            with self._connect(self._smtp, self._timeout) as client:
                client.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipients refused: {sorted(exc.recipients)}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}") from None

    def _compose(self, smtp: Smtp, receiver: Receiver, outgoing: Outgoing) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = " ".join(f"[fmon] {outgoing.message.title}".split())
        mail["From"] = smtp.sender
        mail["To"] = ", ".join(receiver.to)
        mail["Date"] = format_datetime(self._clock.now())
        mail["Message-ID"] = make_msgid(f"n{outgoing.notification_id}", domain="fmon")
        thread = f"<alarm-{outgoing.alarm['id']}@fmon>"  # mail clients thread an alarm's notifications
        mail["References"] = thread
        mail["In-Reply-To"] = thread
        mail["X-Fmon-Alarm"] = str(outgoing.alarm["id"])
        mail["X-Fmon-Event"] = outgoing.reason
        mail.set_content(outgoing.message.text)
        return mail
