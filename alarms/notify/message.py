"""The text of a notification: bilingual, zh-CN first, then English.

Rendered from the alarm's public view (`alarms.events.alarm_view`) and the log entry's reason at
send time, so a message describes the alarm as it is when it goes out. Raised times are shown in
the site's local time. Not for deciding who gets it or sending it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from alarms.notify import reasons
from alarms.routing import TIER_LABELS
from core.domain import Grade

_STATES = {
    "unack": ("未确认", "unacknowledged"),
    "acked": ("已确认", "acknowledged"),
    "rtn_unack": ("已恢复，未确认", "returned to normal, unacknowledged"),
    "normal": ("已恢复正常", "normal"),
}


@dataclass(frozen=True, slots=True)
class Message:
    """One notification's text in the shapes the channels need."""

    title: str  # one line: email subject, DingTalk title
    text: str  # plain text: email body
    markdown: str  # group robots (WeCom, DingTalk)
    link: str | None  # the alarm in the console


def render(alarm: Mapping[str, Any], reason: str, *, timezone: ZoneInfo, console_url: str | None,
           now: datetime) -> Message:
    grade = Grade(alarm["grade"])
    why_zh, why_en = describe(reason, alarm)
    link = console_link(console_url, alarm["id"])
    zh, en = _facts_zh(alarm, timezone, now), _facts_en(alarm, timezone, now)
    title = f"【{grade.label_zh}】{why_zh}：{alarm['message_zh']} | [{grade.label_en}] {why_en}: {alarm['message_en']}"
    text_zh = "\n".join([f"【{grade.label_zh}】{why_zh}", f"告警：{alarm['message_zh']}", *zh])
    text_en = "\n".join([f"[{grade.label_en}] {why_en}", f"Alarm: {alarm['message_en']}", *en])
    links = ([f"查看：{link}"], [f"Open: {link}"]) if link else ([], [])
    text = "\n".join([text_zh, *links[0], "", text_en, *links[1], ""])
    markdown = "\n".join([
        f"### 【{grade.label_zh}】{why_zh}", f"**{alarm['message_zh']}**", *(f"- {line}" for line in zh), "",
        f"**[{grade.label_en}] {why_en}**", f"{alarm['message_en']}", *(f"- {line}" for line in en),
        *([f"\n[查看告警 / Open in console]({link})"] if link else []),
    ])
    return Message(title, text, markdown, link)


def describe(reason: str, alarm: Mapping[str, Any]) -> tuple[str, str]:
    """What the notification says happened, (zh, en)."""
    kind, number = reasons.parse(reason)
    if kind == "escalation" and number in TIER_LABELS:
        zh, en = TIER_LABELS[number]
        return (f"超过响应时限未确认，升级通知第{number}级（{zh}）",
                f"not acknowledged in time, escalated to tier {number} ({en})")
    if kind == "renotify":
        return f"第{number}次提醒：告警仍未确认", f"reminder {number}: still not acknowledged"
    if kind == "regraded" and number is not None:
        grade = Grade(number)
        return f"等级变更为{grade.label_zh}", f"grade changed to {grade.label_en}"
    if kind == "cleared":
        return "告警已恢复", "returned to normal"
    if reason == reasons.HANDLING_OVERDUE:
        still_zh, still_en = ("仍未复位", "still not reset") if not alarm.get("condition_active") else (
            "仍未恢复正常", "still not back to normal")
        return f"超过处置时限{still_zh}，升级通知", f"not handled in time ({still_en}), escalated"
    if reason == reasons.ACKED:
        who = alarm.get("acked_by") or "?"
        return f"已被 {who} 确认", f"acknowledged by {who}"
    if reason == reasons.PAGE:
        return "一级告警，通知项目经理", "grade 1 alarm, paging the project manager"
    return ("新告警", "new alarm") if reason == reasons.RAISED else (reason, reason)


def console_link(console_url: str | None, alarm_id: int) -> str | None:
    return f"{console_url.rstrip('/')}/#/alarms/{alarm_id}" if console_url else None


def _facts_zh(alarm: Mapping[str, Any], timezone: ZoneInfo, now: datetime) -> list[str]:
    where = [f"项目 {alarm['site']}", *_place(alarm, "楼栋", "区域"), f"设备 {alarm['family']}/{alarm['device_id']}"]
    state_zh = _STATES.get(alarm["state"], (alarm["state"], ""))[0]
    return [f"位置：{' · '.join(where)}", f"发生时间：{_local(alarm['raised_at'], timezone)}",
            f"状态：{state_zh} · 已持续 {_minutes(alarm, now)} 分钟"]


def _facts_en(alarm: Mapping[str, Any], timezone: ZoneInfo, now: datetime) -> list[str]:
    device = f"device {alarm['family']}/{alarm['device_id']}"
    where = [f"site {alarm['site']}", *_place(alarm, "building", "zone"), device]
    state_en = _STATES.get(alarm["state"], ("", alarm["state"]))[1]
    return [f"Where: {', '.join(where)}", f"Raised: {_local(alarm['raised_at'], timezone)}",
            f"State: {state_en}, open for {_minutes(alarm, now)} min"]


def _place(alarm: Mapping[str, Any], building: str, zone: str) -> list[str]:
    parts = [f"{building} {alarm['building']}"] if alarm.get("building") else []
    return parts + ([f"{zone} {alarm['zone']}"] if alarm.get("zone") else [])


def _local(iso: str, timezone: ZoneInfo) -> str:
    return f"{_parse(iso).astimezone(timezone):%Y-%m-%d %H:%M:%S} ({timezone.key})"


def _minutes(alarm: Mapping[str, Any], now: datetime) -> int:
    return max(int((now - _parse(alarm["raised_at"])).total_seconds() // 60), 0)


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))
