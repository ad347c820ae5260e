"""How the cell verdict shows: the printed table, Markdown, parent-run metrics and tags, CSV, plot.

The verdict itself is `lstm_models.search.verdict` (training) and `lstm_models.tasks.verdict`
(statistics); this module only presents a `Verdict`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lstm_models.tracking.plots import CELL_COLOURS, figure

TITLES = {"seeds": "each cell's best configuration", "matched": "every cell at the winner's size"}


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def _cells(table) -> list[tuple]:
    """Per row: cell, configuration, params, mean, CI, difference and CI, p (strings; the best has no difference)."""
    out = []
    for i, r in enumerate(table.rows):
        versus = ("(best)", "", "") if i == 0 else (f"{r.diff:+.4f}", f"{r.diff_low:+.4f}..{r.diff_high:+.4f}", _p(r.p))
        out.append((r.runs.cell, r.runs.label, f"{r.runs.n_params:,}", f"{r.mean:.4f}", f"{r.low:.4f}..{r.high:.4f}",
                    *versus))
    return out


def _heading(table) -> str:
    seeds = ", ".join(map(str, table.seeds))
    size = f", about {table.target_params:,} parameters" if table.kind == "matched" else ""
    return (f"{TITLES[table.kind]}{size}, trained with seeds {seeds}, early-stopped on val, "
            f"scored on the same {table.examples} test {table.unit}")


def format_verdict(verdict) -> list[str]:
    """The printed verdict: one table per kind (cells x mean, CI, parameters, p against the best), each
    with its sentence, then what the verdict cost."""
    if verdict is None or not verdict.tables and not verdict.failure:
        return []
    lines = []
    for table in verdict.tables:
        m = f"test_{table.metric}"
        lines += [f"Verdict ({_heading(table)}):",
                  f"  {'cell':<5} {'configuration':<26} {'params':>10} {m + ' mean':>19} {'95% CI':>15} "
                  f"{'vs best':>9} {'95% CI':>17} {'p':>6}"]
        for cell, label, params, mean, ci, diff, dci, p in _cells(table):
            lines.append(f"  {cell:<5} {label:<26} {params:>10} {mean:>19} {ci:>15} {diff:>9} {dci:>17} {p:>6}".rstrip())
        lines.append(f"  {table.sentence()}")
    if verdict.failure:
        lines.append(f"Verdict stopped short: {verdict.failure}")
    lines.append(f"The verdict took {verdict.seconds:.0f}s.")
    return lines


def verdict_markdown(verdict) -> list[str]:
    """The verdict's tables for the parent run's description."""
    lines = []
    for table in (verdict.tables if verdict else []):
        lines += ["", f"**Verdict**, {_heading(table)}:", "",
                  f"| cell | configuration | params | test {table.metric} mean | 95% CI | vs best | 95% CI | p |",
                  "|---|---|---:|---:|---|---:|---|---:|"]
        lines += ["| " + " | ".join(row) + " |" for row in _cells(table)]
        lines += ["", table.sentence()]
    return lines


def metrics(verdict) -> dict[str, float]:
    """``test_<metric>_<cell>_mean``, ``_ci_low``, ``_ci_high`` (``_matched_`` for matched sizes), the cost."""
    out = {"verdict_seconds": verdict.seconds}
    for table in verdict.tables:
        kind = "_matched" if table.kind == "matched" else ""
        for r in table.rows:
            key = f"test_{table.metric}_{r.runs.cell}{kind}"
            out.update({f"{key}_mean": r.mean, f"{key}_ci_low": r.low, f"{key}_ci_high": r.high,
                        f"{key}_p": r.p, f"params_{r.runs.cell}{kind}": float(r.runs.n_params)})
    return out


def tags(verdict) -> dict[str, str]:
    """The verdict's sentences as parent-run tags (``cell_verdict``, ``cell_verdict_matched``)."""
    out = {}
    for table in (verdict.tables if verdict else []):
        out["cell_verdict" + ("_matched" if table.kind == "matched" else "")] = table.sentence()
    return out


def write_csv(verdict, path: Path) -> Path:
    """One row per seed run: kind, cell, configuration, params, seed, test score, run id."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "cell", "configuration", "params", "seed", f"test_{verdict.tables[0].metric}", "run_id"])
        for table in verdict.tables:
            for r in table.rows:
                for seed, score, run_id in zip(table.seeds, r.runs.scores, r.runs.run_ids or [""] * len(table.seeds)):
                    writer.writerow([table.kind, r.runs.cell, r.runs.label, r.runs.n_params, seed, f"{score:.6f}", run_id])
    return path


def plot(verdict, baselines, path: Path) -> Path:
    """Each cell's seed scores, mean and 95% CI, one panel per kind, the baselines as lines."""
    tables = verdict.tables
    with figure(path, ncols=len(tables), figsize=(5.5 * len(tables), 4), dpi=100, squeeze=False) as (fig, axes):
        for ax, table in zip(axes[0], tables):
            cells = sorted(r.runs.cell for r in table.rows)
            for x, cell in enumerate(cells):
                r = next(row for row in table.rows if row.runs.cell == cell)
                colour = CELL_COLOURS.get(cell, "grey")
                ax.scatter([x] * len(r.runs.scores), r.runs.scores, color=colour, alpha=0.6, s=30)
                ax.errorbar([x + 0.15], [r.mean], yerr=[[r.mean - r.low], [r.high - r.mean]], fmt="o",
                            color=colour, capsize=5)
            for i, (method, row) in enumerate((baselines.scores if baselines else {}).items()):
                if method != "best" and table.metric in row:
                    ax.axhline(row[table.metric], color=f"C{i + 3}", linestyle="--", linewidth=1, label=method)
            ax.set_xticks(range(len(cells)), [c.upper() for c in cells])
            ax.set_ylabel(f"test {table.metric}")
            ax.set_title(TITLES[table.kind], fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return path
