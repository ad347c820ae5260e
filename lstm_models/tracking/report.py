"""What a sweep shows: the leaderboard (text and CSV), the objective plot, the resolved spec."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from lstm_models.tracking.plots import CELL_COLOURS, figure
from lstm_models.tracking.verdict_report import format_verdict, verdict_markdown


def leaderboard_rows(result) -> list[dict]:
    """One row per trial, best first; failed trials last."""
    sign = -1 if result.spec.direction == "max" else 1
    rows = []
    for t in result.trials:
        rows.append({
            "trial": t.name, "cell": t.spec.cell, "status": t.status,
            result.spec.objective: t.objective, "best_epoch": t.best_epoch, "epochs": t.epochs,
            "param_count": t.n_params, "seconds_per_epoch": t.seconds_per_epoch,
            f"test_{result.test_metric}": t.test_metrics.get(result.test_metric),
            **{f"hp_{k}": v for k, v in t.spec.params().items() if k != "task"},
            "pruned_epoch": t.pruned_epoch, "error": t.error, "run_id": t.run_id,
        })
    return sorted(rows, key=lambda r: (r["status"] != "FINISHED" or r[result.spec.objective] is None,
                                       sign * (r[result.spec.objective] or 0.0)))


def write_leaderboard_csv(result, path: Path) -> Path:
    rows = leaderboard_rows(result)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def format_leaderboard(result) -> str:
    """The table printed at the end of a sweep: the best trial of each cell type."""
    spec, metric = result.spec, result.test_metric
    head = (f"Leaderboard {spec.name}: best trial per cell ({spec.objective} on val; "
            f"test {metric} on {result.test_size} held-out examples)")
    lines = [head, f"  {'cell':<5} {'trial':<9} {spec.objective:>13} {'test_' + metric:>14} "
                   f"{'params':>10} {'s/epoch':>8}  config"]
    ranked = sorted(result.best_per_cell.values(), key=lambda t: t.objective,
                    reverse=spec.direction == "max")
    for t in ranked:
        mark = " *" if t is result.best else ""
        lines.append(
            f"  {t.spec.cell:<5} {'trial-%02d' % t.number:<9} {t.objective:>13.4f} "
            f"{t.test_metrics.get(metric, float('nan')):>14.4f} {t.n_params or 0:>10,} "
            f"{t.seconds_per_epoch or 0:>8.2f}  {_config(t)}{mark}")
    failed = sum(t.status == "FAILED" and not t.lost for t in result.trials)
    killed = sum(t.status == "KILLED" and not t.lost for t in result.trials)
    lost = sum(t.lost for t in result.trials)
    pruned = sum(t.pruned_epoch is not None for t in result.trials)
    counts = [(pruned, "pruned"), (killed, "interrupted"), (lost, "lost with its process and run again")]
    stopped = "".join(f", {n} {what}" for n, what in counts if n)
    lines.append(f"  {len(result.trials)} trials ({failed} failed{stopped}) in {result.wall_seconds:.0f}s; * = exported")
    if result.baselines is not None and result.best is not None:
        lines += format_baselines(result.baselines, result.best.spec.cell)
    lines += format_verdict(result.verdict)
    return "\n".join(lines)


def format_baselines(baselines, cell: str) -> list[str]:
    """The exported model beside every baseline on the same test data, and the verdict."""
    metrics = list(next(iter(baselines.scores.values())))
    lines = [f"Baselines on the same {baselines.windows} test {baselines.unit}:",
             "  " + f"{'method':<16}" + "".join(f"{'test_' + m:>13}" for m in metrics) + "  note"]
    for method, row in baselines.scores.items():
        name = f"best ({cell})" if method == "best" else method
        note = "the exported model" if method == "best" else baselines.notes.get(method, "")
        lines.append(("  " + f"{name:<16}" + "".join(f"{row[m]:>13.4f}" for m in metrics) + f"  {note}").rstrip())
    lines.append(baselines.verdict(cell))
    return lines


def leaderboard_markdown(result) -> str:
    """The parent run's description: the best trial of each cell, the baselines and the verdict."""
    spec, metric = result.spec, result.test_metric
    lines = [f"**{spec.name}**: {spec.tuner.kind} search over {', '.join(sorted(result.best_per_cell))}, "
             f"{len(result.trials)} trials; {spec.objective} on val, test {metric} on {result.test_size} "
             "held-out examples.", "", f"| cell | trial | {spec.objective} | test {metric} | params | config |",
             "|---|---|---:|---:|---:|---|"]
    ranked = sorted(result.best_per_cell.values(), key=lambda t: t.objective, reverse=spec.direction == "max")
    for t in ranked:
        star = " (exported)" if t is result.best else ""
        lines.append(f"| {t.spec.cell}{star} | {t.name} | {t.objective:.4f} | "
                     f"{t.test_metrics.get(metric, float('nan')):.4f} | {t.n_params or 0:,} | {_config(t)} |")
    if result.baselines is not None and result.best is not None:
        b = result.baselines
        lines += ["", f"| method | test {b.metric} | note |", "|---|---:|---|"]
        lines += [f"| {'best (' + result.best.spec.cell + ')' if m == 'best' else m} | {row[b.metric]:.4f} | "
                  f"{'the exported model' if m == 'best' else b.notes.get(m, '')} |" for m, row in b.scores.items()]
        lines += ["", b.verdict(result.best.spec.cell)]
    lines += verdict_markdown(result.verdict)
    return "\n".join(lines)


def _config(trial) -> str:
    p = trial.spec.params()
    skip = {"task", "cell", "units", "depth", "dropout", "lookback", "bidirectional"}
    rest = " ".join(f"{k}={format_value(v)}" for k, v in p.items() if k not in skip and not k.startswith("units_"))
    return f"{trial.spec.label()} {rest}"


def format_value(v) -> str:
    """A hyperparameter value as shown in progress lines and tables (floats to 3 digits)."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def plot_objective(result, path: Path) -> Path:
    """The objective of every finished trial, in trial order, coloured by cell type."""
    with figure(path, figsize=(7, 4), dpi=100) as (fig, ax):
        for cell, colour in CELL_COLOURS.items():
            pts = [(t.number, t.objective) for t in result.trials if t.spec.cell == cell and t.objective is not None]
            if pts:
                ax.scatter(*zip(*pts), label=cell, color=colour, s=36)
        ax.set_xlabel("trial")
        ax.set_ylabel(result.spec.objective)
        ax.set_title(f"{result.spec.name}: {result.spec.objective} per trial")
        ax.legend()
        ax.grid(alpha=0.3)
    return path


def spec_yaml(spec) -> str:
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)
