"""`fmon maintenance evaluate | train | score`: failure prediction on bring-your-own history.

Wiring only: reading the CSV files, the protocol, training and scoring are in `maintenance/`
(docs/equipment-health.md). Registered on the `maintenance` group by runtime/maintenance_cli.py.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from core.errors import ConfigError

if TYPE_CHECKING:  # the commands import pandas and scikit-learn when run, not when `fmon` starts
    import pandas as pd

    from maintenance.evaluate import EvalConfig
    from maintenance.predict import Risk

F = TypeVar("F", bound=Callable[..., Any])
CSV_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


def history_options(func: F) -> F:
    for option in reversed((
        click.option("--telemetry", required=True, type=CSV_PATH, help="CSV: timestamp,asset_id,<metric…>."),
        click.option("--events", required=True, type=CSV_PATH,
                     help="CSV: timestamp,asset_id,kind,component (kind: failure, maintenance, error)."),
        click.option("--assets", type=CSV_PATH,
                     help="Optional CSV: asset_id,type,installed (one model per type where data allow; age)."),
    )):
        func = option(func)
    return func


def protocol_options(func: F) -> F:
    for option in reversed((
        click.option("--horizon", default="7d", show_default=True, help="Warn this far ahead: 7d, 24h, 2w."),
        click.option("--alert-budget", type=click.FloatRange(0, 1, min_open=True), default=0.05, show_default=True,
                     help="Fraction of the fleet alerted per day (top-k assets by score)."),
        click.option("--cutoffs", type=click.IntRange(min=1), default=3, show_default=True,
                     help="Rolling time-split cutoffs."),
        click.option("--bootstrap", type=click.IntRange(min=0), default=500, show_default=True,
                     help="Bootstrap resamples of assets for the 95 % intervals."),
        click.option("--seed", type=int, default=0, show_default=True),
    )):
        func = option(func)
    return func


def parse_horizon(text: str) -> int:
    """Whole days from `7d`, `24h`, `2w` or `7`."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhw]?)\s*", text.lower())
    if match is None:
        raise click.BadParameter("use days (7d), hours in whole days (48h) or weeks (2w)", param_hint="--horizon")
    value, unit = int(match[1]), match[2] or "d"
    hours = value * {"h": 1, "d": 24, "w": 168}[unit]
    if hours == 0 or hours % 24:
        raise click.BadParameter("the horizon must be a whole number of days (rows are daily)", param_hint="--horizon")
    return hours // 24


def _history(telemetry: Path, events: Path, assets: Path | None) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                         pd.DataFrame | None]:
    from maintenance.history import load_assets_csv, load_events_csv, load_telemetry_csv

    return load_telemetry_csv(telemetry), load_events_csv(events), None if assets is None else load_assets_csv(assets)


def _config(horizon: str, alert_budget: float, cutoffs: int, bootstrap: int, seed: int) -> EvalConfig:
    from maintenance.evaluate import EvalConfig

    return EvalConfig(parse_horizon(horizon), alert_budget=alert_budget, cutoffs=cutoffs, bootstrap=bootstrap,
                      seed=seed)


@click.command("evaluate")
@history_options
@protocol_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as JSON.")
def evaluate_command(telemetry: Path, events: Path, assets: Path | None, horizon: str, alert_budget: float,
                     cutoffs: int, bootstrap: int, seed: int, out: Path | None) -> None:
    """Evaluate failure prediction on a history: the model against four baselines at one alert budget."""
    from maintenance.evaluate import evaluate, summary_table

    try:
        config = _config(horizon, alert_budget, cutoffs, bootstrap, seed)
        report = evaluate(*_history(telemetry, events, assets), config)
        report["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for line in summary_table(report):
        click.echo(line)
    if out is not None:
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"report written to {out}")


@click.command("train")
@history_options
@protocol_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file (joblib); a JSON sidecar is written beside it.")
@click.option("--evaluate/--no-evaluate", "run_evaluation", default=True, show_default=True,
              help="Run the evaluation protocol first and keep its figures in the model's metadata.")
def train_command(telemetry: Path, events: Path, assets: Path | None, horizon: str, alert_budget: float,
                  cutoffs: int, bootstrap: int, seed: int, out: Path, run_evaluation: bool) -> None:
    """Train the failure model on all of a history and save it."""
    from maintenance.artifact import save
    from maintenance.evaluate import evaluate
    from maintenance.training import train

    try:
        history = _history(telemetry, events, assets)
        config = _config(horizon, alert_budget, cutoffs, bootstrap, seed)
        metrics = _metrics(evaluate(*history, config)) if run_evaluation else {}
        artifact = train(*history, config.horizon_days, now=datetime.now(UTC).replace(microsecond=0),
                         metrics=metrics)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    sidecar = save(artifact, out)
    click.echo(f"model {artifact.version_id}: {artifact.training['rows']} rows, "
               f"{artifact.training['failure_events']} failures, {artifact.train_start} to {artifact.train_end}")
    if metrics:
        click.echo(f"evaluated: caught {_pct(metrics['events_caught'])} of failures {config.horizon_days} d ahead "
                   f"at a {alert_budget:.0%} alert budget (error rule {_pct(metrics['error_rule_events_caught'])})")
    click.echo(f"written {out} and {sidecar}")


def _metrics(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("events_caught", "events_caught_ci", "precision", "median_lead_hours", "p10_lead_hours", "pr_auc",
            "brier", "false_alerts_per_asset_month", "n_events", "alert_budget", "cutoffs")
    metrics = {k: report[k] for k in keep}
    for name, baseline in report["baselines"].items():
        metrics[f"{name}_events_caught"] = baseline["events_caught"]
    return metrics


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@click.command("score")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@history_options
@click.option("--at", "at_day", help="Score at the end of this UTC day (YYYY-MM-DD); default: the last telemetry day.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write all risks as CSV.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True, help="Print this many assets.")
def score_command(model_path: Path, telemetry: Path, events: Path, assets: Path | None, at_day: str | None,
                  out: Path | None, top: int) -> None:
    """Risk of failure within the model's horizon, per asset, with the features behind it."""
    from maintenance.artifact import load
    from maintenance.predict import score

    try:
        artifact = load(model_path)
        frames = _history(telemetry, events, assets)
        at = _day(at_day) if at_day else frames[0]["timestamp"].max().date()
        risks = score(artifact, *frames[:2], at, frames[2])
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(risks)} assets scored at the end of {at} (UTC) by model {artifact.version_id}: "
               f"P(failure within {artifact.horizon_days} d)")
    for risk in risks[:top]:
        click.echo(f"  {risk.asset_id:<24} {risk.probability:7.2%}  {_reasons(risk)}")
    if out is not None:
        write_risks(out, risks)
        click.echo(f"written {out}")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter("expected YYYY-MM-DD", param_hint="--at") from None


def _reasons(risk: Risk) -> str:
    return "; ".join(f"{name} {value:+.3g}" for name, value in risk.top_features)


def write_risks(path: Path, risks: list[Risk]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("asset_id", "horizon_days", "probability", "top_features", "model_version"))
        for r in risks:
            writer.writerow((r.asset_id, r.horizon_days, f"{r.probability:.6f}", _reasons(r), r.model_version))


COMMANDS = (evaluate_command, train_command, score_command)
