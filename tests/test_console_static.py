"""Browser test of the live-alarm console (api/static) against a fake API.

The fake below implements only the console's contract (token, open alarms, the alarm
stream), in memory, so that this test checks the page's behaviour and nothing else; the
real API is tested on its own. A real Chromium drives the page through Playwright.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import uvicorn
from fastapi import FastAPI, Form, Header, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright
from playwright.sync_api import Request as BrowserRequest

from core.domain import Grade
from tests.harness.browser import CHROMIUM_ARGS

STATIC_DIR = Path(__file__).resolve().parents[1] / "api" / "static"
SCREENSHOT = Path("/tmp/fmon-console.png")
USERNAME = "zhang.wei"
PASSWORD = "correct horse battery staple"
CLOSE_BAD_TOKEN = 4401
CLOSE_SERVICE_RESTART = 1012

# ------------------------------------------------------------------------------ fake API


def make_alarm(
    alarm_id: int,
    grade: int,
    message_zh: str,
    message_en: str,
    raised_at: str,
    *,
    state: str = "unack",
    family: str = "env",
    device_id: str = "env-101",
    rule_id: str = "env.co2_high",
    value: float | None = None,
    repeat_count: int = 0,
    version: int = 1,
) -> dict[str, Any]:
    """An alarm exactly as the API serialises it."""
    return {
        "id": alarm_id,
        "rule_id": rule_id,
        "source": f"demo/{family}/{device_id}",
        "site": "demo",
        "family": family,
        "device_id": device_id,
        "category": rule_id.split(".")[0],
        "grade": grade,
        "grade_label_zh": Grade(grade).label_zh,
        "grade_label_en": Grade(grade).label_en,
        "state": state,
        "message_zh": message_zh,
        "message_en": message_en,
        "value": value,
        "raised_at": raised_at,
        "cleared_at": None,
        "updated_at": raised_at,
        "repeat_count": repeat_count,
        "version": version,
    }


def seed_alarms() -> list[dict[str, Any]]:
    return [
        make_alarm(
            7,
            3,
            "二氧化碳浓度过高：1234.5 ppm",
            "CO2 too high: 1234.5 ppm",
            "2026-11-21T08:00:00Z",
            value=1234.5,
        ),
        make_alarm(
            8,
            1,
            "火警：3号楼 B1 层烟感报警",
            "Fire: smoke detector, building 3, B1",
            "2026-11-21T07:30:00Z",
            state="acked",
            family="fire_panel",
            device_id="fp-3",
            rule_id="fire.fire",
        ),
        make_alarm(
            9,
            3,
            "PM2.5 超标：118 µg/m³",
            "PM2.5 too high: 118 µg/m³",
            "2026-11-21T08:05:00Z",
            state="rtn_unack",
            device_id="env-102",
            rule_id="env.pm25_high",
            value=118,
        ),
        make_alarm(
            10,
            4,
            "2号梯 门机故障",
            'Lift 2 door fault <img src=x onerror="window.__xss=1">',
            "2026-11-21T06:00:00Z",
            family="elevator",
            device_id="lift-2",
            rule_id="elevator.door_fault",
        ),
        make_alarm(
            6,
            2,
            "已恢复正常的告警",
            "An alarm back to normal",
            "2026-11-21T05:00:00Z",
            state="normal",
        ),
    ]


class FakeApi:
    """In-memory stand-in for the API's console contract.

    Tests call its methods from their own thread; the app runs on uvicorn's event loop in
    another, so shared state sits behind one condition variable and socket work is handed
    to that loop.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._alarms: dict[int, dict[str, Any]] = {}
        # Separate token sets so that a test can make exactly one of REST or the stream refuse.
        self.rest_tokens: set[str] = set()
        self.stream_tokens: set[str] = set()
        self.stream_connections = 0  # accepted stream connections since reset()
        self.list_queries: list[str] = []  # query strings of GET /alarms since reset()
        self._sockets: set[WebSocket] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.app = self._build_app()

    # -- the contract ------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/v1/auth/token")
        async def token(
            username: str = Form(), password: str = Form(), content_type: str = Header("")
        ) -> dict[str, Any]:
            # The contract is an OAuth2 password form; FastAPI would also accept multipart.
            if not content_type.startswith("application/x-www-form-urlencoded"):
                raise HTTPException(415, "expected application/x-www-form-urlencoded")
            if (username, password) != (USERNAME, PASSWORD):
                raise HTTPException(
                    401,
                    "Incorrect username or password",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            issued = secrets.token_urlsafe(16)
            with self._cond:
                self.rest_tokens.add(issued)
                self.stream_tokens.add(issued)
            return {
                "access_token": issued,
                "token_type": "bearer",
                "expires_in": 900,
                "role": "operator",
            }

        @app.get("/api/v1/alarms")
        async def alarms(
            request: Request,
            open_only: bool = Query(False, alias="open"),
            limit: int = 200,
            authorization: str = Header(""),
        ) -> dict[str, Any]:
            with self._cond:
                self.list_queries.append(request.url.query)
                if authorization.removeprefix("Bearer ") not in self.rest_tokens:
                    raise HTTPException(401, "Not authenticated")
                items = [a for a in self._alarms.values() if not open_only or a["state"] != "normal"]
            items.sort(key=lambda a: a["raised_at"], reverse=True)
            items.sort(key=lambda a: a["grade"])
            return {"items": items[:limit], "total": len(items)}

        @app.websocket("/api/v1/stream")
        async def stream(websocket: WebSocket, token: str = "") -> None:
            # Accept first: a close code only reaches the browser after the handshake.
            await websocket.accept()
            with self._cond:
                allowed = token in self.stream_tokens
            if not allowed:
                await websocket.close(code=CLOSE_BAD_TOKEN)
                return
            self._loop = asyncio.get_running_loop()
            with self._cond:
                self._sockets.add(websocket)
                self.stream_connections += 1
                self._cond.notify_all()
            try:
                while True:
                    await websocket.receive_text()
            except WebSocketDisconnect:
                pass
            finally:
                with self._cond:
                    self._sockets.discard(websocket)

        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="console")
        return app

    # -- test controls -------------------------------------------------------------------

    def reset(self, alarms: list[dict[str, Any]]) -> None:
        self.drop_streams()
        with self._cond:
            self._alarms = {a["id"]: a for a in alarms}
            self.rest_tokens.clear()
            self.stream_tokens.clear()
            self.stream_connections = 0
            self.list_queries.clear()

    def revoke_tokens(self, *, rest: bool = False, stream: bool = False) -> None:
        """Make the REST API and/or the stream refuse every token issued so far."""
        with self._cond:
            if rest:
                self.rest_tokens.clear()
            if stream:
                self.stream_tokens.clear()

    def store(self, alarm: dict[str, Any]) -> None:
        """Change the server's state without telling connected browsers."""
        with self._cond:
            self._alarms[alarm["id"]] = alarm

    def push(self, event: str, alarm: dict[str, Any]) -> None:
        """Store the alarm and send it to every connected browser, as the real API does."""
        self.store(alarm)
        frame = json.dumps({"type": "alarm", "event": event, "alarm": alarm}, ensure_ascii=False)
        self._on_loop(self._send_all(frame))

    def wait_for_streams(self, count: int, timeout: float = 10) -> None:
        """Block until `count` stream connections have been accepted since reset()."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.stream_connections >= count, timeout):
                raise AssertionError(f"expected {count} stream connections, got {self.stream_connections}")

    def drop_streams(self, code: int = CLOSE_SERVICE_RESTART) -> None:
        """Close every stream from the server side, like an API restart would."""
        self._on_loop(self._close_all(code))

    async def _send_all(self, frame: str) -> None:
        for websocket in self._current_sockets():
            await websocket.send_text(frame)

    async def _close_all(self, code: int) -> None:
        for websocket in self._current_sockets():
            # The browser may have closed it first (e.g. the previous test's page went away).
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=code)

    def _current_sockets(self) -> list[WebSocket]:
        with self._cond:
            return list(self._sockets)

    def _on_loop(self, coroutine: Any) -> None:
        if self._loop is None:  # no browser has connected yet: nothing to send to
            coroutine.close()
            return
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=5)


class ServerThread:
    """uvicorn on a background thread, on a socket bound before start (no port race)."""

    def __init__(self, app: FastAPI) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake API did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def fake_api() -> FakeApi:
    return FakeApi()


@pytest.fixture(scope="module")
def base_url(fake_api: FakeApi) -> Iterator[str]:
    with ServerThread(fake_api.app) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, base_url: str, fake_api: FakeApi) -> Iterator[Page]:
    """A fresh browser profile (empty storage) in Shanghai time, against fresh fake data."""
    fake_api.reset(seed_alarms())
    context: BrowserContext = browser.new_context(timezone_id="Asia/Shanghai", viewport={"width": 1360, "height": 820})
    page = context.new_page()
    page_errors: list[str] = []
    foreign_requests: list[str] = []

    def check_request(request: BrowserRequest) -> None:
        if not request.url.startswith((base_url, "data:")):
            foreign_requests.append(request.url)

    page.on("pageerror", lambda error: page_errors.append(str(error)))
    context.on("request", check_request)
    yield page
    context.close()
    assert page_errors == [], "uncaught errors in the page"
    assert foreign_requests == [], "the console must load nothing from elsewhere"


def log_in(page: Page, base_url: str, password: str = PASSWORD) -> None:
    page.goto(base_url)
    page.get_by_label("用户名").fill(USERNAME)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录").click()


def row(page: Page, alarm_id: int) -> Locator:
    return page.locator(f'#alarm-rows tr[data-alarm-id="{alarm_id}"]')


def expect_order(page: Page, alarm_ids: list[int]) -> None:
    rows = page.locator("#alarm-rows tr")
    expect(rows).to_have_count(len(alarm_ids))
    for index, alarm_id in enumerate(alarm_ids):
        expect(rows.nth(index)).to_have_attribute("data-alarm-id", str(alarm_id))


def expect_grade_counts(page: Page, counts: dict[int, int]) -> None:
    for grade, count in counts.items():
        value = page.locator(f'#grade-counts li[data-grade="{grade}"] .grade-count-value')
        expect(value).to_have_text(str(count))
    expect(page.locator("#total-count")).to_have_text(str(sum(counts.values())))


# ------------------------------------------------------------------------------ tests


def test_wrong_password_shows_an_error_and_stays_on_the_login_form(page: Page, base_url: str) -> None:
    log_in(page, base_url, password="wrong")

    expect(page.get_by_role("alert")).to_have_text("用户名或密码错误，请重试。")
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#alarms-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('fmon.token')") is None


def test_login_lists_open_alarms_in_chinese(page: Page, base_url: str, fake_api: FakeApi) -> None:
    log_in(page, base_url)

    expect(page.locator("#connection")).to_have_text("已连接")
    # Grade ascending, then newest first; the alarm already back to normal is not listed.
    expect_order(page, [8, 9, 7, 10])
    seven = row(page, 7)
    expect(seven.locator(".badge")).to_have_text("三级 较大")
    expect(seven.locator(".message-cell")).to_have_text("二氧化碳浓度过高：1234.5 ppm")
    expect(seven.locator(".state-cell")).to_have_text("未确认")
    expect(seven.locator(".device-cell")).to_contain_text("env-101")
    # Times are the browser's local time: 08:00Z is 16:00 in Shanghai.
    expect(seven.locator("time")).to_have_text("2026/11/21 16:00:00")
    expect(row(page, 8).locator(".state-cell")).to_have_text("已确认")
    expect(row(page, 9).locator(".state-cell")).to_have_text("已恢复未确认")
    expect(page.locator(".alarm-table thead th:not(.select-cell)")).to_have_text(
        ["等级", "状态", "告警内容", "设备", "数值", "发生时间", "重复次数", "操作"]
    )
    expect_grade_counts(page, {1: 1, 2: 0, 3: 2, 4: 1})
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert set(fake_api.list_queries) == {"open=true&suppressed=false&limit=200"}


def test_pushed_alarms_update_the_table_without_reload(page: Page, base_url: str, fake_api: FakeApi) -> None:
    log_in(page, base_url)
    expect_order(page, [8, 9, 7, 10])
    fake_api.wait_for_streams(1)
    page.evaluate("window.__sameDocument = true")

    fake_api.push(
        "raised",
        make_alarm(
            11,
            2,
            "生活水泵 P-2 轴承温度过高：86 °C",
            "Pump P-2 bearing too hot: 86 °C",
            "2026-11-21T08:10:00Z",
            family="pump",
            device_id="pump-2",
            rule_id="pump.bearing_temp",
            value=86,
        ),
    )
    expect_order(page, [8, 11, 9, 7, 10])
    expect(row(page, 11).locator(".badge")).to_have_text("二级 重大")
    expect(row(page, 11).locator(".message-cell")).to_have_text("生活水泵 P-2 轴承温度过高：86 °C")

    repeated = {**seed_alarms()[0], "repeat_count": 3, "version": 2}
    fake_api.push("repeated", repeated)
    expect(row(page, 7).locator(".repeats-cell")).to_have_text("3")

    fake_api.push("cleared", {**seed_alarms()[2], "state": "normal", "version": 2})
    expect_order(page, [8, 11, 7, 10])
    expect_grade_counts(page, {1: 1, 2: 1, 3: 1, 4: 1})

    # An event older than what the page holds must not roll the row back. Frames arrive in
    # order, so once the acknowledgement of alarm 10 shows, the stale frame was handled too.
    fake_api.push("updated", {**seed_alarms()[0], "state": "acked", "version": 1})
    fake_api.push("updated", {**seed_alarms()[3], "state": "acked", "version": 2})
    expect(row(page, 10).locator(".state-cell")).to_have_text("已确认")
    expect(row(page, 7).locator(".state-cell")).to_have_text("未确认")
    expect(row(page, 7).locator(".repeats-cell")).to_have_text("3")

    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_english_shows_english_text_and_is_remembered(page: Page, base_url: str) -> None:
    log_in(page, base_url)
    expect_order(page, [8, 9, 7, 10])

    page.get_by_role("button", name="切换到英文").click()

    expect(page.locator(".alarm-table thead th:not(.select-cell)")).to_have_text(
        ["Grade", "State", "Alarm", "Device", "Value", "Raised at", "Repeats", "Actions"]
    )
    expect(row(page, 7).locator(".message-cell")).to_have_text("CO2 too high: 1234.5 ppm")
    expect(row(page, 7).locator(".badge")).to_have_text("Grade 3 (significant)")
    expect(row(page, 7).locator(".state-cell")).to_have_text("Unacknowledged")
    expect(page.locator("#connection")).to_have_text("Connected")
    # Alarm text is shown as text, never parsed as markup.
    expect(row(page, 10).locator(".message-cell")).to_have_text(
        'Lift 2 door fault <img src=x onerror="window.__xss=1">'
    )
    expect(page.locator("#alarm-rows img")).to_have_count(0)

    page.reload()  # language from localStorage, session from sessionStorage
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(row(page, 7).locator(".message-cell")).to_have_text("CO2 too high: 1234.5 ppm")
    assert page.evaluate("window.__xss") is None

    page.get_by_role("button", name="Switch to Chinese").click()
    expect(row(page, 7).locator(".message-cell")).to_have_text("二氧化碳浓度过高：1234.5 ppm")


def test_stream_updates_keep_the_layout_and_the_focus(page: Page, base_url: str, fake_api: FakeApi) -> None:
    log_in(page, base_url)
    expect_order(page, [8, 9, 7, 10])
    fake_api.wait_for_streams(1)
    last = row(page, 10)
    last.evaluate("tr => { tr.__kept = true; }")
    details = last.get_by_role("button", name="详情")
    details.focus()
    before = last.bounding_box()

    # Alarm 7, above, is acknowledged elsewhere: its Ack button goes, its row keeps its size.
    fake_api.push("updated", {**seed_alarms()[0], "state": "acked", "version": 2})
    expect(row(page, 7).locator(".state-cell")).to_have_text("已确认")
    expect(row(page, 7).get_by_role("button", name="确认")).to_have_count(0)
    assert last.bounding_box() == before
    expect(details).to_be_focused()
    assert last.evaluate("tr => tr.__kept === true"), "an unchanged row is kept, not rebuilt"


def test_reconnects_after_the_server_drops_the_stream(page: Page, base_url: str, fake_api: FakeApi) -> None:
    log_in(page, base_url)
    expect_order(page, [8, 9, 7, 10])
    fake_api.wait_for_streams(1)

    fake_api.drop_streams()
    # Raised while the page had no stream: it only learns of it by fetching the list again.
    fake_api.store(
        make_alarm(
            12,
            1,
            "燃气泄漏：厨房 LEL 25%",
            "Gas leak: kitchen LEL 25%",
            "2026-11-21T08:20:00Z",
            family="gas",
            device_id="gas-1",
            rule_id="gas.lel_high",
            value=25,
        )
    )
    expect_order(page, [12, 8, 9, 7, 10])

    fake_api.wait_for_streams(2)  # a new stream connection, after the backoff
    expect(page.locator("#connection")).to_have_text("已连接")
    fake_api.push(
        "raised",
        make_alarm(
            13,
            4,
            "噪声超标：62 dB(A)",
            "Noise too high: 62 dB(A)",
            "2026-11-21T08:30:00Z",
            rule_id="env.noise_high",
        ),
    )
    expect(row(page, 13)).to_be_visible()


def test_stream_close_code_4401_returns_to_login(page: Page, base_url: str, fake_api: FakeApi) -> None:
    log_in(page, base_url)
    fake_api.wait_for_streams(1)

    # The list still accepts the token, so only the close code can end the session.
    fake_api.revoke_tokens(stream=True)
    fake_api.drop_streams()

    expect(page.locator("#login-view")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("登录已失效，请重新登录。")
    assert page.evaluate("sessionStorage.getItem('fmon.token')") is None


def test_api_401_returns_to_login(page: Page, base_url: str, fake_api: FakeApi) -> None:
    log_in(page, base_url)
    expect_order(page, [8, 9, 7, 10])

    # The stream still accepts the token, so only the 401 can end the session.
    fake_api.revoke_tokens(rest=True)
    page.reload()

    expect(page.locator("#login-view")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("登录已失效，请重新登录。")
    expect(page.locator("#alarm-rows tr")).to_have_count(0)
