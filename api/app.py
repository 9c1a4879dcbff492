"""The FastAPI application factory. Services come in ready-made; nothing is built at import."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, FastAPI, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import BaseRoute

from api import errors
from api.deps import ApiServices, Services
from api.routes import alarms, auth, dead_letters, equipment, incidents, kpis, maintenance, stream, telemetry

STATIC_DIR = Path(__file__).resolve().parent / "static"
V1_PREFIX = "/api/v1"
V1_ROUTERS = (auth.router, maintenance.router, alarms.router, incidents.router, kpis.router, dead_letters.router,
              equipment.router, telemetry.router, stream.router)


def v1_routes() -> Iterator[tuple[str, BaseRoute]]:
    """Every /api/v1 route with its full path (for the route x role checks)."""
    for router in V1_ROUTERS:
        for route in router.routes:
            yield V1_PREFIX + getattr(route, "path", ""), route


def create_app(services: ApiServices) -> FastAPI:
    app = FastAPI(title="fmon", version="1", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.services = services
    errors.install(app)
    v1 = APIRouter(prefix=V1_PREFIX)
    for router in V1_ROUTERS:
        v1.include_router(router)
    app.include_router(v1)
    app.add_api_route("/healthz", health, methods=["GET"], tags=["health"])
    app.add_api_route("/metrics", metrics, methods=["GET"], tags=["health"], include_in_schema=False)
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="console")
    return app


def health(services: Services) -> dict[str, str]:
    """Liveness and state-database reachability; no authentication (for healthchecks)."""
    with services.db.session() as session:
        session.connection().exec_driver_sql("SELECT 1")
    return {"status": "ok"}


def metrics(services: Services) -> Response:
    """Prometheus exposition; scraped without a token, so keep this port private in production."""
    return Response(generate_latest(services.metrics), media_type=CONTENT_TYPE_LATEST)
