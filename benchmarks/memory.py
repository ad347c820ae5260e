"""Long-range memory: the adding problem at lengths 50, 100, 200, 400, one budget for every cell.

Every row trains the same network (one recurrent layer, same units, optimiser, batches and
epochs) from the same seed on the same data; only the cell changes, and for LSTM the forget-gate
bias (``unit_forget_bias``: 1, or 0 as in the original formulation). After each epoch the model
is scored on validation and test; the table reports the test MSE of the epoch with the best
validation MSE. Solved = test MSE below 0.01; beats baseline = below 0.167 (always answering 1).

    make bench-memory                      # the full table, written to benchmarks/results/ and docs/inside-the-cell.md
    python benchmarks/memory.py --lengths 50 --epochs 1 --train-size 500 --out /tmp/m --page ''
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLVED, BASELINE = 0.01, 1.0 / 6.0
ROWS = {  # label -> (cell, unit_forget_bias)
    "lstm": ("lstm", True),
    "lstm (forget bias 0)": ("lstm", False),
    "gru": ("gru", True),
    "rnn": ("rnn", True),
}
START, END = "<!-- bench-memory:start -->", "<!-- bench-memory:end -->"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="50,100,200,400")
    p.add_argument("--rows", default=",".join(ROWS), help=f"any of: {', '.join(ROWS)}")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--train-size", type=int, default=8000)
    p.add_argument("--eval-size", type=int, default=1000, help="validation and test sequences each")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--page", default=str(ROOT / "docs" / "inside-the-cell.md"),
                   help="page to update between its markers ('' = none)")
    return p


def run_one(label: str, length: int, args) -> dict:
    """Train one row at one length; return its scores and wall time."""
    import keras

    from lstm_models.data.options import DataSpec
    from lstm_models.data.adding import load_adding
    from lstm_models.models.build import ModelSpec, build_model
    from lstm_models.tasks import task_for

    cell, forget_bias = ROWS[label]
    started = time.perf_counter()
    data = load_adding(DataSpec("adding", {"length": length, "train_size": args.train_size,
                                           "val_size": args.eval_size, "test_size": args.eval_size,
                                           "seed": args.seed}), Path("."))
    keras.backend.clear_session()
    spec = ModelSpec(task="forecasting", cell=cell, units=(args.units,), lookback=length,
                     learning_rate=args.learning_rate, clipnorm=1.0, batch_size=args.batch_size,
                     unit_forget_bias=forget_bias)
    model = build_model(spec, task_for(data).make_inputs(), seed=args.seed)
    (x, y), val, test = (data.windows(p, length) for p in ("train", "val", "test"))
    history = []
    for epoch in range(args.epochs):
        fit = model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=True, verbose=0)
        scores = {"epoch": epoch + 1, "train_mse": float(fit.history["loss"][-1]),
                  "val_mse": float(model.evaluate(*val, batch_size=500, verbose=0)[0]),
                  "test_mse": float(model.evaluate(*test, batch_size=500, verbose=0)[0])}
        history.append(scores)
    best = min(history, key=lambda h: h["val_mse"])
    return {"row": label, "cell": cell, "unit_forget_bias": forget_bias, "length": length,
            "best_epoch": best["epoch"], "val_mse": best["val_mse"], "test_mse": best["test_mse"],
            "solved": best["test_mse"] < SOLVED, "beats_baseline": best["test_mse"] < BASELINE,
            "seconds": time.perf_counter() - started, "history": history}


def budget(args) -> str:
    steps = args.epochs * -(-args.train_size // args.batch_size)
    return (f"{args.units} units, 1 layer, Adam lr {args.learning_rate:g}, clipnorm 1, batch {args.batch_size}, "
            f"{args.epochs} epochs of {args.train_size:,} sequences ({steps:,} updates), seed {args.seed}; "
            f"{args.eval_size:,} validation and {args.eval_size:,} test sequences")


def markdown(results: list[dict], args, wall: float) -> str:
    """The table: one row per cell, one column per length, each cell 'MSE mark (seconds)'."""
    lengths = sorted({r["length"] for r in results})
    rows = list(dict.fromkeys(r["row"] for r in results))
    by = {(r["row"], r["length"]): r for r in results}
    head = "| cell | " + " | ".join(f"T={n}" for n in lengths) + " |"
    lines = [head, "|" + " --- |" * (len(lengths) + 1)]
    for row in rows:
        cells = []
        for n in lengths:
            r = by.get((row, n))
            mark = "solved" if r and r["solved"] else "beats baseline" if r and r["beats_baseline"] else "no"
            cells.append(f"{r['test_mse']:.4f} {mark} ({r['seconds']:.0f}s)" if r else "")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join([
        *lines, "",
        f"Test MSE at the best validation epoch, then: solved (below {SOLVED}), beats baseline (below "
        f"{BASELINE:.3f}, always answering 1) or no; seconds = wall time of that run (data, training, scoring).",
        f"Budget per run: {budget(args)}.",
        f"Total wall time {wall / 60:.1f} min on {os.cpu_count()} CPU cores ({platform.machine()}), "
        f"`make bench-memory`.",
    ])


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    from report_bench import replace_between
    args = _parser().parse_args(argv)
    lengths = [int(n) for n in args.lengths.split(",")]
    rows = [r.strip() for r in args.rows.split(",")]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        print(f"memory.py: error: unknown row {unknown[0]!r}; choose from {', '.join(ROWS)}", file=sys.stderr)
        return 2
    print(f"adding problem, lengths {lengths}; budget per run: {budget(args)}", flush=True)
    started = time.perf_counter()
    results = []
    for length in lengths:
        for label in rows:
            r = run_one(label, length, args)
            results.append(r)
            print(f"  T={length:<4} {label:<21} test MSE {r['test_mse']:.4f} (epoch {r['best_epoch']})"
                  f"{'  solved' if r['solved'] else '  beats baseline' if r['beats_baseline'] else ''}"
                  f"  {r['seconds']:.0f}s", flush=True)
    wall = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(results, args, wall)
    record = {"task": "adding problem (Arjovsky et al. 2016 setting)", "budget": budget(args),
              "solved_below": SOLVED, "baseline_mse": BASELINE, "wall_seconds": wall,
              "cpu_count": os.cpu_count(), "results": results}
    (out / "memory.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "memory.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    print(f"\nwrote {out / 'memory.json'} and {out / 'memory.md'}")
    if args.page and replace_between(Path(args.page), START, END, table + "\n"):
        print(f"updated the table in {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
