"""Memory soak: 30 tiny trials in one process; the resident set size (RSS) after each.

    python benchmarks/soak.py [--trials 30] [--csv benchmarks/soak.csv]

A real sweep (random search over LSTM, GRU and SimpleRNN on sunspots, 1 epoch, units 4 or 8,
tracked in a throw-away SQLite MLflow store). The figure that matters is the growth from trial 5
(TensorFlow and MLflow warmed up) to the last trial.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rss_mib() -> float:
    """This process's resident set size, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--csv", default=str(ROOT / "benchmarks" / "soak.csv"))
    args = parser.parse_args()

    from lstm_models.spec.sweep import parse_sweep
    from lstm_models.data import load_dataset
    from lstm_models.search.run import Hooks, SweepPaths, run_sweep
    from lstm_models.tracking.mlflow_store import MLflowTracker

    spec = parse_sweep({
        "name": "soak", "task": "forecasting",
        "dataset": {"kind": "statsmodels", "name": "sunspots", "lookback": [4, 6]},
        "search": {"units": [4, 8], "depth": {"min": 1, "max": 2}, "batch_size": 32},
        "tuner": {"kind": "random", "max_trials": args.trials, "max_epochs": 1, "seed": 1},
    })
    data = load_dataset(spec.dataset, ROOT / "datasets" / "cache")
    rows: list[dict] = []
    start = time.perf_counter()

    def ended(trial) -> None:
        rows.append({"trial": len(rows) + 1, "rss_mib": round(rss_mib(), 1),
                     "seconds": round(time.perf_counter() - start, 1)})
        print(f"trial {rows[-1]['trial']:>3}  RSS {rows[-1]['rss_mib']:8.1f} MiB  {rows[-1]['seconds']:7.1f}s",
              flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tracker = MLflowTracker(f"sqlite:///{tmp}/mlflow.db")
        run_sweep(spec, data, tracker, SweepPaths(Path(tmp) / "exports", Path(tmp) / "runs"),
                  hooks=Hooks(log=lambda line: None, on_trial=ended))
    if not rows:
        sys.exit(f"soak: no trial ended; nothing written to {args.csv}")
    with open(args.csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["trial", "rss_mib", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    first, last = rows[min(4, len(rows) - 1)], rows[-1]
    growth = last["rss_mib"] - first["rss_mib"]
    per_trial = growth / max(1, last["trial"] - first["trial"])
    print(f"RSS growth from trial {first['trial']} to {last['trial']}: {growth:+.1f} MiB "
          f"({per_trial:+.2f} MiB per trial); written to {args.csv}")


if __name__ == "__main__":
    main()
