"""Equipment-health jobs on a timer: planned work orders, failure-model retraining, daily risk scores.

`HealthJobs.run(now)` does what is due at `now` and says what it did:
- generates the planned work orders of the next `plan_days` days (idempotent),
- asks `maintenance.jobs.plan` whether to retrain (no model, model too old, history grew, new
  failures) and which completed days to score,
- trains on the ledger's history (`maintenance.fleet`) and saves the artifact under
  `<data dir>/models/`, scores and records the risks in the state database.

What ran last (`runs.json` beside the artifact) survives restarts, so a restart neither rescores
nor skips a day. `fmon maintenance jobs` runs it once or every `--every` seconds; `fmon demo`
runs it in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.clock import Clock
from core.errors import ConfigError
from core.settings import Settings
from maintenance import plans
from maintenance.jobs import DataState, Job, JobPolicy, Runs, plan
from maintenance.risks import record_risks
from maintenance.workorders import failures_since
from runtime.stores import open_telemetry_store
from storage.state.database import StateDatabase
from storage.telemetry import TelemetryStore

if TYPE_CHECKING:  # pandas and scikit-learn load only when a job is due (seconds at start-up otherwise)
    from maintenance.fleet import FleetHistory
    from maintenance.history import ReadingSource

log = logging.getLogger(__name__)


@dataclass
class HealthJobs:
    db: StateDatabase
    store: ReadingSource
    models_dir: Path
    horizon_days: int = 7
    history_days: int = 180
    plan_days: int = 14
    policy: JobPolicy = field(default_factory=JobPolicy)

    @property
    def artifact_path(self) -> Path:
        return self.models_dir / f"failure-{self.horizon_days}d.joblib"

    @property
    def runs_path(self) -> Path:
        return self.models_dir / "runs.json"

    def run(self, now: datetime) -> list[str]:
        """Do what is due at `now`; one line per thing done."""
        done = [self._plan_work(now)]
        runs = self._runs()
        since = now - timedelta(days=self.history_days)
        with self.db.session() as session:
            failures = failures_since(session, since)
        # Reading the history is the expensive part: only when something is due without counting
        # its growth (then the plan is made again with the real row count, which may add a retrain).
        if not plan(now, runs, DataState(rows=runs.rows_at_training, failures=failures), self.policy):
            return done
        from maintenance.fleet import fleet_history

        with self.db.session() as session:
            history = fleet_history(session, self.store, since, now)
        for job in plan(now, runs, _data_state(history), self.policy):
            runs, line = self._do(job, history, runs, now)
            done.append(line)
            self._save_runs(runs)
        return done

    def _plan_work(self, now: datetime) -> str:
        with self.db.session() as session:
            report = plans.generate(session, now, self.plan_days)
        return f"planned work orders: {len(report.created)} new, {report.existing} already there"

    def _do(self, job: Job, history: FleetHistory, runs: Runs, now: datetime) -> tuple[Runs, str]:
        from maintenance.artifact import load, save
        from maintenance.predict import score
        from maintenance.training import train

        if job.kind == "train":
            try:
                artifact = train(history.telemetry, history.events, history.assets, self.horizon_days, now=now)
            except ConfigError as exc:
                return runs, f"not retrained ({job.reason}): {exc}"
            save(artifact, self.artifact_path)
            trained = Runs(now, _data_state(history).rows, history.failures, runs.last_scored_day)
            return trained, f"retrained {artifact.version_id} ({job.reason})"
        assert job.day is not None
        risks = score(load(self.artifact_path), history.telemetry, history.events, job.day, history.assets)
        with self.db.session() as session:
            report = record_risks(session, risks, now)
        scored = Runs(runs.model_created_at, runs.rows_at_training, runs.failures_at_training, job.day)
        return scored, (f"scored {job.day}: {report.recorded} risks recorded"
                        + (f", {len(report.unresolved)} assets not in the ledger" if report.unresolved else ""))

    def _runs(self) -> Runs:
        if not self.runs_path.exists() or not self.artifact_path.exists():
            return Runs()
        data: dict[str, Any] = json.loads(self.runs_path.read_text())
        return Runs(
            datetime.fromisoformat(data["model_created_at"]) if data.get("model_created_at") else None,
            int(data.get("rows_at_training", 0)), int(data.get("failures_at_training", 0)),
            date.fromisoformat(data["last_scored_day"]) if data.get("last_scored_day") else None)

    def _save_runs(self, runs: Runs) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.runs_path.write_text(json.dumps({
            "model_created_at": runs.model_created_at.isoformat() if runs.model_created_at else None,
            "rows_at_training": runs.rows_at_training, "failures_at_training": runs.failures_at_training,
            "last_scored_day": runs.last_scored_day.isoformat() if runs.last_scored_day else None}, indent=2))


def _data_state(history: FleetHistory) -> DataState:
    """Labelled rows ≈ the asset-days with telemetry."""
    telemetry = history.telemetry
    rows = 0 if telemetry.empty else len(telemetry.groupby(["asset_id", telemetry["timestamp"].dt.floor("D")]))
    return DataState(rows=rows, failures=history.failures)


def open_health_jobs(settings: Settings, db: StateDatabase, horizon_days: int = 7) -> tuple[HealthJobs, TelemetryStore]:
    """Health jobs over the configured telemetry store; the caller closes the store."""
    store = open_telemetry_store(settings)
    return HealthJobs(db, store, settings.data_dir / "models", horizon_days=horizon_days), store


async def run_periodically(jobs: HealthJobs, clock: Clock, stop: asyncio.Event, every_s: float) -> None:
    """Run the jobs now and then every `every_s` seconds until `stop`; a failing run is logged and
    retried next time (the jobs are idempotent)."""
    while not stop.is_set():
        try:
            for line in await asyncio.to_thread(jobs.run, clock.now()):
                log.info("equipment health: %s", line)
        except Exception:
            log.exception("equipment-health jobs failed; retrying in %.0f s", every_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
