"""The command line: ``lstm-models sweep | gates | gradients``. The only code that reads argv or the environment."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from lstm_models.errors import ConfigError, DataError, LstmModelsError

DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstm-models", description="Sweeps over LSTM, GRU and SimpleRNN models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sweep = sub.add_parser("sweep", help="run the sweep a spec describes")
    sweep.add_argument("spec", help="a sweep spec, e.g. sweeps/sentiment.yaml")
    sweep.add_argument("--max-trials", type=int)
    sweep.add_argument("--max-epochs", type=int)
    sweep.add_argument("--tuner", choices=["random", "bayesian", "hyperband"])
    sweep.add_argument("--seed", type=int)
    sweep.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                       help=f"MLflow tracking URI, or 'none' (default {DEFAULT_TRACKING_URI})")
    sweep.add_argument("--output", default="exports", help="where the best model is exported (default exports/)")
    sweep.add_argument("--cache-dir", default="datasets/cache", help="download cache (default datasets/cache)")
    datasets = sub.add_parser("datasets", help="list the datasets, or show one spec's splits")
    datasets.add_argument("--cache-dir", default="datasets/cache", help="download cache (default datasets/cache)")
    shows = datasets.add_subparsers(dest="action")
    show = shows.add_parser("show", help="load a spec's dataset and print its splits")
    show.add_argument("spec", help="a sweep spec, e.g. sweeps/co2.yaml")
    show.add_argument("--cache-dir", default=argparse.SUPPRESS, help="download cache (default datasets/cache)")
    gates = sub.add_parser("gates", help="every gate of an exported model's recurrent layers for one input")
    gates.add_argument("export", help="an export folder, e.g. exports/sentiment")
    given = gates.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", help="a sentence (text models)")
    given.add_argument("--values", help="lookback comma-separated values, a:b per step for several channels (forecasting)")
    gates.add_argument("--out", default="gates", help="where gates.csv and gates.png go (default gates/)")
    grads = sub.add_parser("gradients", help="||dh_T/dx_t|| per step for fresh cells or a trained model")
    grads.add_argument("--cells", help="fresh cells to probe, e.g. lstm,gru,rnn (default: all three, "
                                       "none when --trained is given)")
    grads.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    grads.add_argument("--units", type=int, default=32, help="units of the fresh cells (default 32)")
    grads.add_argument("--trained", help="an export folder: probe its trained recurrent stack")
    grads.add_argument("--batch", type=int, default=16, help="random sequences averaged over (default 16)")
    grads.add_argument("--out", default="gradients", help="where gradients.csv and .png go (default gradients/)")
    return parser


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return done.stdout.strip() if done.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _ui_command(uri: str) -> str:
    if uri == DEFAULT_TRACKING_URI:
        return "make ui   (MLflow UI on http://127.0.0.1:5000)"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def cmd_sweep(args: argparse.Namespace) -> int:
    from lstm_models.config import load_sweep

    spec = load_sweep(args.spec).with_overrides(
        max_trials=args.max_trials, max_epochs=args.max_epochs, kind=args.tuner, seed=args.seed)
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output}: exists and is not a folder")

    from lstm_models.data import load_dataset

    data = load_dataset(spec.dataset, Path(args.cache_dir))  # bad data answers before TensorFlow loads

    from lstm_models.report import format_leaderboard
    from lstm_models.sweep import run_sweep
    from lstm_models.tracking import MLflowTracker, NullTracker

    tracker = NullTracker() if args.tracking_uri == "none" else MLflowTracker(args.tracking_uri)
    tracker.check()
    result = run_sweep(spec, data, tracker, output, tags={"git_commit": _git_commit(),
                                                           "mlflow.source.git.commit": _git_commit()},
                       log=lambda line: print(line, flush=True))
    print()
    print(format_leaderboard(result))
    print(f"SavedModel: {result.export_dir}  (tf.saved_model.load(path).serve(x))")
    if args.tracking_uri != "none":
        print(f"MLflow: experiment {spec.name!r}, parent run {result.parent_run_id} in {args.tracking_uri}")
        print(f"Open the UI: {_ui_command(args.tracking_uri)}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from lstm_models.data import catalog

    if args.action is None:
        rows = catalog.available(Path(args.cache_dir))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        print(f"{'kind':<{widths[0]}}  {'name':<{widths[1]}}  {'task':<{widths[2]}}  size")
        for row in rows:
            print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)) + "  " + row[3])
        print("lstm-models datasets show SPEC   loads a spec's dataset and prints its splits")
        return 0
    from lstm_models.config import load_sweep
    from lstm_models.data import load_dataset

    spec = load_sweep(args.spec)
    data = load_dataset(spec.dataset, Path(args.cache_dir))
    print("\n".join(catalog.describe(data)))
def _out_dir(value: str) -> Path:
    out = Path(value)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    return out


def cmd_gates(args: argparse.Namespace) -> int:
    from lstm_models.gates import check_input, gates_report, load_export, read_export, text_input

    given = check_input(read_export(args.export), args.text, args.values)  # before TensorFlow loads
    out = _out_dir(args.out)
    model, meta = load_export(args.export)
    x, labels = given or text_input(model, args.text)
    lines = gates_report(model, x, labels, out, title=f"{Path(args.export).name}: {meta.get('cell', '')}")
    for line in lines:
        print(line)
    print(f"wrote {out / 'gates.csv'} and {out / 'gates.png'} ({len(labels)} steps)")
    return 0


def cmd_gradients(args: argparse.Namespace) -> int:
    from lstm_models.config import CELL_NAMES

    for flag, value, lo, hi in (("--length", args.length, 2, 10_000), ("--units", args.units, 1, 1024),
                                ("--batch", args.batch, 1, 1024)):
        if not lo <= value <= hi:
            raise ConfigError(f"{flag} must be an int in [{lo}, {hi}]. Got {value} instead.")
    out = _out_dir(args.out)
    cells = args.cells.split(",") if args.cells else ([] if args.trained else list(CELL_NAMES))
    for cell in cells:
        if cell not in CELL_NAMES:
            raise ConfigError(f"--cells: {cell!r} is not one of {', '.join(CELL_NAMES)}")
    from lstm_models.gates import load_export, read_export

    if args.trained:
        read_export(args.trained)  # a wrong folder is reported before TensorFlow loads
    from lstm_models import gradients

    probes = [gradients.probe_fresh(c, args.length, args.units, args.batch) for c in cells]
    if args.trained:
        model, meta = load_export(args.trained)
        name = f"{meta.get('cell', '?')} (trained: {Path(args.trained).name})"
        probes.append(gradients.probe_trained(model, args.length, name, args.batch))
    for line in gradients.gradients_report(probes, out):
        print(line)
    print(f"wrote {out / 'gradients.csv'} and {out / 'gradients.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lstm-models`` and ``python -m lstm_models``; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    try:
        commands = {"sweep": cmd_sweep, "datasets": cmd_datasets, "gates": cmd_gates, "gradients": cmd_gradients}
        return commands[args.command](args)
    except LstmModelsError as exc:
        print(f"lstm-models: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ConfigError, DataError)) else 1
