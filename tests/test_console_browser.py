"""The console against the real API: a real state database (SQLite), the real routes, the real
event stream, driven in Debian's Chromium through Playwright.

Each test gets its own database and API server (uvicorn on a socket bound before start); alarms
are raised through the real rule engine and alarm service, whose events reach the browser over
the stream like in production. Locators wait; there are no sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import update

from alarms.actions import Action, AlarmActions
from alarms.events import AlarmEvent
from alarms.service import AlarmService
from api.app import create_app
from api.deps import ApiServices
from core.clock import SystemClock
from core.domain import DeviceRef, Family, Reading
from ingest.inventory import load_inventory
from maintenance import ledger, roster
from rules.engine import RuleEngine
from rules.loader import rule_by_id
from storage.state.database import StateDatabase
from storage.state.equipment_models import EquipmentRisk
from storage.state.models import User
from storage.state.registry import RegistryStore
from tests.harness.api import services_with_users
from tests.harness.browser import CHROMIUM_ARGS

PASSWORD = "correct-horse-battery"
EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
CO2_HIGH = rule_by_id("env.co2_high")
SCREENSHOTS = Path("/tmp")


class LiveApi:
    """The real API app on a fresh SQLite state database, one user per role (named after it)."""

    def __init__(self, data_dir: Path) -> None:
        self.db = StateDatabase(f"sqlite:///{data_dir / 'state.db'}")
        self.db.upgrade()
        self.clock = SystemClock()
        self.services: ApiServices = services_with_users(self.db, self.clock, ttl_minutes=60, password=PASSWORD)
        self.app = create_app(self.services)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tokens: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self.services.hub.bind(self._loop)  # events reach this loop's sockets
            await self._server.serve(sockets=[self._socket])

        asyncio.run(serve())

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None:  # end the streams, as the runtime does on shutdown
            self._loop.call_soon_threadsafe(self.services.hub.close)
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        self.db.dispose()

    # -- data ----------------------------------------------------------------------------------

    def publish(self, event: AlarmEvent) -> None:
        self.services.hub.publish_threadsafe(event.as_message())

    def raise_co2(self, device: str, site: str = "s1") -> dict[str, Any]:
        """A real CO2 alarm through the rule engine and the alarm service; returns it (API view)."""
        now = self.clock.now()
        room = DeviceRef(site, Family.ENV, device)
        readings = [Reading(room, now - timedelta(seconds=s), {"co2_ppm": 1400.0}) for s in (60, 0)]
        AlarmService(self.db, self.clock, self.publish).apply(RuleEngine([CO2_HIGH]).process(readings))
        found: list[dict[str, Any]] = [
            a for a in self.get("/alarms?open=true", "viewer")["items"] if a["device_id"] == device
        ]
        assert found, f"no alarm raised for {device}"
        return found[0]

    def seed_equipment(self) -> None:
        """The example estate's ledger and technicians, and one failure risk."""
        now = self.clock.now()
        RegistryStore(self.db).apply(load_inventory(EXAMPLES / "inventory.yaml"), now)
        ledger.import_csv(self.db, (EXAMPLES / "equipment.csv").read_text(encoding="utf-8"), "equipment.csv", now,
                          actor="test")
        with self.db.session() as session:
            technicians = (EXAMPLES / "technicians.csv").read_text(encoding="utf-8")
            roster.apply(session, roster.parse_csv(technicians, "technicians.csv"), "technicians.csv", now,
                         actor="test")
            session.add(EquipmentRisk(equipment_id="DT-B1-001", asset_id="DT-B1-001", horizon_days=30,
                                      probability=0.83, top_features=[["door_cycles", 0.4]], model_version="t",
                                      scored_at=now))

    def behind_the_consoles_back(self, alarm_id: int, action: Action, **kwargs: Any) -> None:
        """Change an alarm without publishing the event: the console still shows the old version."""
        AlarmActions(self.db, self.clock, lambda _event: None).perform(alarm_id, action, "admin", **kwargs)

    # -- HTTP ----------------------------------------------------------------------------------

    def headers(self, user: str) -> dict[str, str]:
        if user not in self._tokens:
            response = httpx.post(f"{self.base_url}/api/v1/auth/token", data={"username": user, "password": PASSWORD})
            response.raise_for_status()
            self._tokens[user] = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._tokens[user]}"}

    def get(self, path: str, user: str = "operator") -> Any:
        response = httpx.get(f"{self.base_url}/api/v1{path}", headers=self.headers(user))
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any], user: str = "operator") -> Any:
        response = httpx.post(f"{self.base_url}/api/v1{path}", json=body, headers=self.headers(user))
        assert response.status_code < 300, response.text
        return response.json()


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LiveApi]:
    with LiveApi(tmp_path) as live:
        yield live


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, api: LiveApi) -> Iterator[Page]:
    """A fresh profile in Shanghai time; fails the test on page errors or foreign requests."""
    context = browser.new_context(timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    context.on("request", lambda request: None if request.url.startswith((api.base_url, "data:", "blob:"))
               else foreign.append(request.url))
    yield page
    context.close()
    assert errors == [], "uncaught errors in the page"
    assert foreign == [], "the console must load nothing from elsewhere"


def sign_in(page: Page, api: LiveApi, user: str) -> None:
    page.goto(api.base_url)
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def alarm_row(page: Page, alarm_id: int) -> Any:
    return page.locator(f'#alarm-rows tr[data-alarm-id="{alarm_id}"]')


def history(api: LiveApi, alarm_id: int) -> list[tuple[str, str, str]]:
    return [(h["action"], h["actor"], h["reason"]) for h in api.get(f"/alarms/{alarm_id}", "viewer")["history"]]


# ------------------------------------------------------------------------------ alarms


def test_operator_acknowledges_and_shelves_alarms_from_the_console(page: Page, api: LiveApi) -> None:
    first = api.raise_co2("room-1")
    second = api.raise_co2("room-2")
    sign_in(page, api, "operator")
    expect(alarm_row(page, first["id"]).locator(".state-cell")).to_have_text("未确认")

    # Acknowledge from the row: the state changes in place, and the audit log has who did it.
    alarm_row(page, first["id"]).get_by_role("button", name="确认").click()
    expect(alarm_row(page, first["id"]).locator(".state-cell")).to_have_text("已确认")
    expect(page.locator("#toasts")).to_contain_text("已确认")
    assert history(api, first["id"])[-1][:2] == ("alarm.ack", "operator")
    # The Ack button went away with the acknowledgement: the focus stays in the row.
    expect(alarm_row(page, first["id"]).get_by_role("button", name="详情")).to_be_focused()

    # Shelve: a reason is required, the duration defaults to the 8-hour maximum.
    alarm_row(page, second["id"]).get_by_role("button", name="搁置").click()
    dialog = page.get_by_role("dialog", name="搁置告警")
    expect(dialog.get_by_label("原因")).to_be_focused()
    expect(dialog.get_by_label("搁置时长")).to_have_value("480")
    dialog.get_by_role("button", name="搁置").click()
    expect(dialog.get_by_role("alert")).to_have_text("请填写“原因”。")
    dialog.get_by_label("原因").fill("传感器校准中")
    dialog.get_by_label("搁置时长").select_option("120")
    dialog.get_by_role("button", name="搁置").click()
    expect(dialog).to_be_hidden()

    # A shelved alarm leaves the annunciated list; the toggle shows it, marked.
    expect(alarm_row(page, second["id"])).to_have_count(0)
    expect(page.locator("#shelved-count")).to_have_text("1")
    page.get_by_label("显示已搁置").check()
    expect(alarm_row(page, second["id"]).locator(".chip-shelved")).to_contain_text("搁置至")
    shelved = api.get(f"/alarms/{second['id']}", "viewer")
    assert shelved["shelve_reason"] == "传感器校准中"
    assert shelved["shelved_by"] == "operator"
    until = datetime.fromisoformat(shelved["shelved_until"])
    assert timedelta(minutes=115) < until - datetime.now(UTC) <= timedelta(minutes=120)

    # The detail drawer: history with the reason, a comment, Esc closes it and the focus returns.
    details = alarm_row(page, second["id"]).get_by_role("button", name="详情")
    details.click()
    drawer = page.locator("#alarm-drawer")
    expect(drawer.locator("#drawer-history")).to_contain_text("传感器校准中")
    expect(page).to_have_url(f"{api.base_url}/#/alarms/{second['id']}")
    drawer.get_by_label("备注").fill("已通知租户")
    drawer.get_by_role("button", name="添加备注").click()
    expect(drawer.locator("#drawer-history")).to_contain_text("已通知租户")
    drawer.get_by_role("button", name="取消搁置").click()
    expect(drawer.get_by_role("button", name="搁置", exact=True)).to_be_visible()
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(details).to_be_focused()
    assert [h[0] for h in history(api, second["id"])][-3:] == ["alarm.shelve", "alarm.comment", "alarm.unshelve"]
    page.screenshot(path=str(SCREENSHOTS / "fmon-console-alarms.png"), full_page=True)


def test_bulk_acknowledge_and_a_409_when_someone_else_was_first(page: Page, api: LiveApi) -> None:
    alarms = [api.raise_co2(f"room-{n}") for n in range(1, 4)]
    sign_in(page, api, "operator")
    for alarm in alarms:
        expect(alarm_row(page, alarm["id"])).to_be_visible()

    # Someone acknowledges the first alarm without this console hearing of it.
    api.behind_the_consoles_back(alarms[0]["id"], Action.ACK, reason="other console")
    alarm_row(page, alarms[0]["id"]).get_by_role("button", name="确认").click()
    expect(page.locator("#toasts-alert")).to_contain_text("该告警已被他人更改，已刷新为最新状态。")
    expect(alarm_row(page, alarms[0]["id"]).locator(".state-cell")).to_have_text("已确认")  # reloaded

    # Select all, acknowledge the two still unacknowledged in one go.
    page.get_by_label("选择全部告警").check()
    expect(page.locator("#selection-count")).to_have_text("已选择 3 条")
    page.get_by_role("button", name="批量确认（2）").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("备注").fill("交接班统一确认")
    dialog.get_by_role("button", name="确认").click()
    expect(page.locator("#toasts")).to_contain_text("已确认 2 条告警。")
    for alarm in alarms[1:]:
        expect(alarm_row(page, alarm["id"]).locator(".state-cell")).to_have_text("已确认")
        assert history(api, alarm["id"])[-1] == ("alarm.ack", "operator", "交接班统一确认")


def test_a_viewer_sees_no_action_buttons(page: Page, api: LiveApi) -> None:
    alarm = api.raise_co2("room-1")
    incident = api.post("/incidents", {"playbook": "gas-leak", "site": "s1", "grade": 3, "building": "b2"})
    sign_in(page, api, "viewer")
    row = alarm_row(page, alarm["id"])
    expect(row.get_by_role("button")).to_have_text(["详情"])
    expect(page.locator("#bulk-bar")).to_be_hidden()
    expect(page.locator("#alarm-rows input[type=checkbox]")).to_have_count(0)

    row.get_by_role("button", name="详情").click()
    drawer = page.locator("#alarm-drawer")
    expect(drawer.locator("#drawer-history")).to_contain_text("告警产生")
    expect(drawer.locator("#drawer-actions")).to_be_hidden()
    expect(drawer.locator("#comment-form")).to_be_hidden()
    drawer.get_by_role("button", name="关闭").click()

    page.get_by_role("link", name="事件", exact=True).click()
    page.get_by_role("link", name=incident["title_zh"]).click()
    steps = page.locator("ol.steps > li")
    expect(steps.first).to_be_visible()
    expect(page.locator(".step-actions")).to_have_count(0)
    expect(page.get_by_role("button", name="关闭事件")).to_have_count(0)
    expect(page.get_by_role("button", name="查看报告（HTML）")).to_be_visible()


def test_the_language_toggle_switches_every_view(page: Page, api: LiveApi) -> None:
    alarm = api.raise_co2("room-1")
    api.post("/incidents", {"playbook": "gas-leak", "site": "s1", "grade": 3, "building": "b2"})
    sign_in(page, api, "operator")
    expect(alarm_row(page, alarm["id"]).get_by_role("button", name="确认")).to_be_visible()

    page.get_by_role("button", name="切换到英文").click()
    expect(page.locator("#view-title")).to_have_text("Live alarms")
    expect(alarm_row(page, alarm["id"]).get_by_role("button", name="Acknowledge")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main navigation").locator("a [data-i18n]")).to_have_text(
        ["Alarms", "Incidents", "Equipment"])

    page.get_by_role("link", name="Incidents", exact=True).click()
    expect(page.locator("#view-title")).to_have_text("Incidents")
    expect(page.locator(".incident-table thead th")).to_have_text(
        ["Grade", "Incident", "Playbook", "State", "Opened at", "Alarms", "Steps done", "Overdue steps"])
    expect(page.locator("#incident-rows")).to_contain_text("Gas leak response")

    page.get_by_role("link", name="Equipment", exact=True).click()
    expect(page.locator(".subnav a")).to_have_text(["Ledger", "Work orders", "Next 14 days"])
    page.get_by_role("link", name="Work orders").click()
    expect(page.get_by_label("Open only")).to_be_checked()

    page.get_by_role("button", name="Switch to Chinese").click()
    expect(page.locator("#view-title")).to_have_text("设备运维")
    expect(page.get_by_label("仅显示未完成")).to_be_checked()


# ------------------------------------------------------------------------------ incidents


def test_an_operator_works_a_playbook_from_the_incident_view(page: Page, api: LiveApi) -> None:
    started = api.post("/incidents", {"playbook": "gas-leak", "site": "s1", "grade": 3, "building": "b2"})
    incident_id = started["id"]
    sign_in(page, api, "operator")
    page.get_by_role("link", name="事件", exact=True).click()
    row = page.locator(f'#incident-rows tr[data-incident-id="{incident_id}"]')
    expect(row.locator(".playbook-cell")).to_have_text("燃气泄漏应急处置")
    total = len(started["run"]["steps"])
    expect(row.locator(".steps-cell")).to_have_text(f"0/{total}")

    row.get_by_role("link").click()
    expect(page).to_have_url(f"{api.base_url}/#/incidents/{incident_id}")
    expect(page.locator("#incident-title")).to_be_focused()
    inspect = page.locator('li.step[data-step-id="inspect"]')
    expect(inspect.locator(".step-status")).to_have_text("待处理")
    expect(inspect.locator(".countdown")).to_contain_text("剩余")

    # Complete a manual step from the checklist.
    inspect.get_by_role("button", name="完成").click()
    expect(inspect.locator(".step-status")).to_have_text("已完成")
    steps = {s["step_id"]: s for s in api.get(f"/incidents/{incident_id}")["run"]["steps"]}
    assert (steps["inspect"]["status"], steps["inspect"]["done_by"]) == ("done", "operator")

    # Another operator assigns a step: the stream brings it to this page.
    api.post(f"/incidents/{incident_id}/steps/fix-leak/assign", {"assignee": "李师傅"}, user="admin")
    fix = page.locator('li.step[data-step-id="fix-leak"]')
    expect(fix).to_contain_text("李师傅")
    expect(fix.locator(".step-status")).to_have_text("进行中")

    # Comment with a photo link.
    fix.get_by_role("button", name="备注").click()
    dialog = page.get_by_role("dialog", name="添加备注或照片")
    dialog.get_by_label("备注内容").fill("现场已通风")
    dialog.get_by_label("照片链接").fill("https://photos.example/leak.jpg")
    dialog.get_by_role("button", name="备注").click()
    expect(fix.locator(".evidence")).to_contain_text("现场已通风")
    expect(fix.get_by_role("link", name="照片")).to_have_attribute("href", "https://photos.example/leak.jpg")

    # The report: HTML in a new tab (fetched with the token), Markdown as a download.
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="查看报告（HTML）").click()
    report = opened.value
    expect(report.locator("h1")).to_contain_text(f"事件报告 / Incident report #{incident_id}")
    assert report.evaluate("window.opener") is None
    report.close()
    with page.expect_download() as downloaded:
        page.get_by_role("button", name="下载报告（Markdown）").click()
    assert downloaded.value.suggested_filename == f"incident-{incident_id}-report.md"
    assert "现场已通风" in Path(downloaded.value.path()).read_text(encoding="utf-8")

    # Closing is refused while mandatory steps are open: the 409's steps are listed.
    page.get_by_role("button", name="关闭事件").click()
    close = page.get_by_role("dialog", name="关闭事件")
    close.get_by_label("原因").fill("处置完毕")
    close.get_by_role("button", name="关闭事件").click()
    expect(close.get_by_role("alert")).to_contain_text("必做步骤未完成")
    expect(close.locator(".blocking-steps")).to_contain_text("是否确有泄漏？")
    page.keyboard.press("Escape")
    expect(close).to_be_hidden()

    # The decision "false alarm" closes the incident, with a reason.
    decision = page.locator('li.step[data-step-id="leak-found"]')
    decision.get_by_role("button", name="误报").click()
    reason = page.get_by_role("dialog")
    reason.get_by_label("原因").fill("烹饪油烟导致")
    reason.get_by_role("button", name="误报").click()
    expect(page.locator(".incident-badges")).to_contain_text("已关闭")
    assert api.get(f"/incidents/{incident_id}")["state"] == "closed"
    # Read again after the close: the steps still open were skipped with it.
    expect(page.locator('li.step[data-step-id="report"] .step-status')).to_have_text("已跳过")
    expect(page.locator(".step-actions button", has_text="完成")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "fmon-console-incident.png"), full_page=True)


# ------------------------------------------------------------------------------ equipment


def test_an_engineer_works_a_work_order_and_sees_health_and_schedule(page: Page, api: LiveApi) -> None:
    api.seed_equipment()
    order_id = api.post("/work-orders", {"equipment_id": "DT-B1-001", "title": "轿厢异响", "priority": "high"})["id"]
    sign_in(page, api, "engineer")
    page.get_by_role("link", name="设备", exact=True).click()
    lift = page.locator('tr[data-equipment-id="DT-B1-001"]')
    expect(lift.locator(".risk-text")).to_have_text("30 天内故障概率 83%")
    expect(lift.get_by_role("meter")).to_have_attribute("aria-valuenow", "83")
    expect(page.locator(".equipment-table tbody tr").first).to_have_attribute("data-equipment-id", "DT-B1-001")

    page.get_by_role("link", name="工单").click()
    row = page.locator(f'tr[data-work-order-id="{order_id}"]')
    row.get_by_role("button", name="派工").click()
    dialog = page.get_by_role("dialog", name="派工")
    dialog.get_by_label("负责人").select_option("huadong.lift1")
    dialog.get_by_role("button", name="派工").click()
    expect(row.locator(".wo-status")).to_have_text("已派工")
    expect(row).to_contain_text("华东电梯维保组1")
    row.get_by_role("button", name="开始").click()
    expect(row.locator(".wo-status")).to_have_text("进行中")
    row.get_by_role("button", name="完工").click()
    done = page.get_by_role("dialog", name="完工")
    done.get_by_label("实际用时（分钟）").fill("45")
    done.get_by_role("button", name="完工").click()
    expect(row).to_have_count(0)  # open work orders only
    finished = api.get(f"/work-orders/{order_id}")
    assert (finished["status"], finished["minutes_spent"], finished["assignee"]) == ("done", 45, "huadong.lift1")

    page.get_by_role("link", name="未来 14 天计划").click()
    expect(page.locator(".schedule-day")).to_have_count(14)
    page.screenshot(path=str(SCREENSHOTS / "fmon-console-schedule.png"), full_page=True)


# ------------------------------------------------------------------------------ session


def test_the_console_renews_its_token_before_it_expires(page: Page, api: LiveApi) -> None:
    page.clock.install()  # the page's timers run when the test moves its clock
    sign_in(page, api, "operator")
    with page.expect_response("**/api/v1/auth/refresh") as renewal:
        page.clock.run_for("49:00")  # 80 % of the 60-minute token
    assert renewal.value.status == 200
    renewed = renewal.value.json()["access_token"]
    page.wait_for_function("token => sessionStorage.getItem('fmon.token') === token", arg=renewed)
    expect(page.locator("#login-view")).to_be_hidden()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    mine = httpx.get(f"{api.base_url}/api/v1/auth/me", headers={"Authorization": f"Bearer {renewed}"})
    assert mine.json() == {"username": "operator", "role": "operator"}


def test_a_disabled_operator_is_signed_out_by_the_stream(page: Page, api: LiveApi) -> None:
    sign_in(page, api, "operator")
    with api.db.session() as session:
        session.execute(update(User).where(User.username == "operator").values(disabled=True))
    api.services.hub.revalidate_threadsafe()  # what the API process does every 15 s
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#login-error")).to_have_text("登录已失效，请重新登录。")
    assert page.evaluate("sessionStorage.getItem('fmon.token')") is None
