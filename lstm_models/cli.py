"""The command line: ``lstm-models sweep | datasets | gates | gradients``. The only code that reads argv or the environment.

``sweep`` checks everything it can before it trains, in this order: the spec, the output and
state folders, the tracking store, the data; `run_sweep` then checks the sweep state
(``--resume`` / ``--fresh``) before it writes anything. SIGINT and SIGTERM raise `Interrupted`
through a `Deferral` (see `lstm_models.search.interrupt`); the sweep marks its runs KILLED and
the command exits 130 or 143 after printing the command that resumes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from lstm_models.errors import ConfigError, DataError, Interrupted, LstmModelsError, check_writable
from lstm_models.spec.sweep import CELL_NAMES, TUNERS
from lstm_models.tracking.tracker import NO_TRACKING

DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstm-models", description="Sweeps over LSTM, GRU and SimpleRNN models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sweep = sub.add_parser("sweep", help="run the sweep a spec describes")
    sweep.add_argument("spec", help="a sweep spec, e.g. sweeps/sentiment.yaml")
    sweep.add_argument("--max-trials", type=int)
    sweep.add_argument("--max-epochs", type=int)
    sweep.add_argument("--tuner", choices=TUNERS)
    sweep.add_argument("--seed", type=int)
    sweep.add_argument("--time-budget", metavar="DURATION",
                       help="start no trial after this much wall-clock time, e.g. 90s, 30m, 2h")
    start = sweep.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue the interrupted sweep of this spec (finished trials are kept; "
                            "a trial lost with its process runs again)")
    start.add_argument("--fresh", action="store_true",
                       help="start a new sweep even if one of this spec exists (its runs stay in MLflow)")
    sweep.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                       help=f"MLflow tracking URI, or '{NO_TRACKING}' (default {DEFAULT_TRACKING_URI})")
    sweep.add_argument("--output", default="exports", help="where the best model is exported (default exports/)")
    sweep.add_argument("--workdir", default="runs",
                       help="where sweep state lives, one folder per sweep name (default runs/)")
    sweep.add_argument("--cache-dir", default="datasets/cache", help="download cache (default datasets/cache)")
    server = sub.add_parser("tracking-server", help="an MLflow tracking server on PostgreSQL, proxied artifacts")
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    server.add_argument("--artifacts", default="mlflow/server-artifacts",
                        help="where the server stores artifacts (default mlflow/server-artifacts)")
    db = server.add_mutually_exclusive_group()
    db.add_argument("--db-url", help="an existing PostgreSQL database, postgresql://USER@HOST:PORT/DB")
    db.add_argument("--db-dir", default="mlflow/postgres",
                    help="a database cluster in this folder, created on the first run (default mlflow/postgres)")
    server.add_argument("--allow-public", action="store_true",
                        help="allow --host to be an address other machines reach (a private network only)")
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


def _resume_command(argv: list[str]) -> str:
    """The command line that was run, with ``--resume`` in place of ``--fresh``."""
    program = [sys.executable, "-m", "lstm_models"] if sys.argv[0].endswith("__main__.py") else [sys.argv[0]]
    args = [a for a in argv if a not in ("--fresh", "--resume")]
    return shlex.join(program + args + ["--resume"])


def _install_signal_handlers(guard) -> None:
    """SIGINT and SIGTERM raise `Interrupted` (exit 130 / 143), deferred by ``guard`` while it holds."""
    def handler(signum, frame):
        guard.interrupt(Interrupted(signum))

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_sweep(args: argparse.Namespace, argv: list[str], guard) -> int:
    from lstm_models.spec.sweep import load_sweep

    # 1. the spec, 2. the folders, 3. the tracking store, 4. the data; run_sweep checks the state.
    spec = load_sweep(args.spec).with_overrides(
        max_trials=args.max_trials, max_epochs=args.max_epochs, kind=args.tuner, seed=args.seed,
        time_budget=args.time_budget)
    folder = Path(args.workdir) / spec.name
    output = Path(args.output)
    check_writable(output, f"--output {output}")
    check_writable(folder, f"--workdir {args.workdir}")

    from lstm_models.tracking.tracker import make_tracker

    tracker = make_tracker(args.tracking_uri)
    tracker.check()

    from lstm_models.data import load_dataset

    data = load_dataset(spec.dataset, Path(args.cache_dir))

    from lstm_models.search.run import Hooks, SweepPaths, run_sweep
    from lstm_models.tracking.report import format_leaderboard

    args.state_folder = folder
    mode = "resume" if args.resume else "fresh" if args.fresh else "new"
    commit = _git_commit()
    hooks = Hooks(log=lambda line: print(line, flush=True), guard=guard,
                  tags={"git_commit": commit, "mlflow.source.git.commit": commit})
    result = run_sweep(spec, data, tracker, SweepPaths(output, folder), mode, hooks)
    print()
    print(format_leaderboard(result))
    if result.stop_reason:
        print(f"Stopped early: {result.stop_reason}")
    print(f"SavedModel: {result.export_dir}  (tf.saved_model.load(path).serve(x))")
    if tracker.enabled:
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
    from lstm_models.data import load_dataset
    from lstm_models.spec.sweep import load_sweep

    spec = load_sweep(args.spec)
    data = load_dataset(spec.dataset, Path(args.cache_dir))
    from lstm_models.tasks import task_for  # TensorFlow loads only once the data is read

    print("\n".join(task_for(data).describe()))
    return 0


def _out_dir(value: str) -> Path:
    out = Path(value)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    return out


def cmd_gates(args: argparse.Namespace) -> int:
    from lstm_models.export import load_export, read_export
    from lstm_models.inspect.gates import gates_report
    from lstm_models.tasks import check_input

    given = check_input(read_export(args.export), args.text, args.values)  # before TensorFlow loads
    out = _out_dir(args.out)
    model, meta = load_export(args.export)
    from lstm_models.tasks.text import text_input

    x, labels = given or text_input(model, args.text)
    lines = gates_report(model, x, labels, out, title=f"{Path(args.export).name}: {meta.get('cell', '')}")
    for line in lines:
        print(line)
    print(f"wrote {out / 'gates.csv'} and {out / 'gates.png'} ({len(labels)} steps)")
    return 0


def cmd_gradients(args: argparse.Namespace) -> int:
    from lstm_models.spec.rules import Rule, check_scalar

    for flag, value, lo, hi in (("--length", args.length, 2, 10_000), ("--units", args.units, 1, 1024),
                                ("--batch", args.batch, 1, 1024)):
        check_scalar(value, Rule(int, min=lo, max=hi), flag)
    out = _out_dir(args.out)
    cells = args.cells.split(",") if args.cells else ([] if args.trained else list(CELL_NAMES))
    for cell in cells:
        if cell not in CELL_NAMES:
            raise ConfigError(f"--cells: {cell!r} is not one of {', '.join(CELL_NAMES)}")
    from lstm_models.export import load_export, read_export

    if args.trained:
        read_export(args.trained)  # a wrong folder is reported before TensorFlow loads
    from lstm_models.inspect import gradients

    probes = [gradients.probe_fresh(c, args.length, args.units, args.batch) for c in cells]
    if args.trained:
        model, meta = load_export(args.trained)
        name = f"{meta.get('cell', '?')} (trained: {Path(args.trained).name})"
        probes.append(gradients.probe_trained(model, args.length, name, args.batch))
    for line in gradients.gradients_report(probes, out):
        print(line)
    print(f"wrote {out / 'gradients.csv'} and {out / 'gradients.png'}")
    return 0


def cmd_tracking_server(args: argparse.Namespace) -> int:
    from lstm_models.tracking import server

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in [1, 65535]. Got {args.port} instead.")
    if server.is_public(args.host):
        if not args.allow_public:
            raise ConfigError(f"--host {args.host}: not a loopback address; MLflow's server has no authentication "
                              "by default, so binding it needs --allow-public (on a private network only)")
        print(f"warning: the tracking server listens on {args.host}:{args.port}; anyone who reaches that port can "
              "read and write every run: keep it on a private network", file=sys.stderr, flush=True)
    try:
        server.serve(args.host, args.port, Path(args.artifacts), args.db_url,
                     None if args.db_url else Path(args.db_dir), log=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        return 0  # SIGINT or SIGTERM: both servers were stopped on the way out
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lstm-models`` and ``python -m lstm_models``; returns the exit code."""
    from lstm_models.search.interrupt import Deferral

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    guard = Deferral()
    _install_signal_handlers(guard)
    try:
        commands = {"sweep": lambda a: cmd_sweep(a, argv, guard), "datasets": cmd_datasets,
                    "gates": cmd_gates, "gradients": cmd_gradients, "tracking-server": cmd_tracking_server}
        return commands[args.command](args)
    except LstmModelsError as exc:
        print(f"lstm-models: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ConfigError, DataError)) else 1
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the message below must get out
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        name, code = (signal.Signals(exc.signum).name, exc.exit_code) if isinstance(exc, Interrupted) else ("SIGINT", 130)
        folder = getattr(args, "state_folder", None)
        if folder is None:
            print(f"lstm-models: interrupted by {name} before the sweep started; nothing to resume", file=sys.stderr)
        else:
            print(f"lstm-models: interrupted by {name}: the running trial and the sweep are marked KILLED; "
                  f"finished trials are kept in {folder}. Resume with:\n  {_resume_command(argv)}",
                  file=sys.stderr, flush=True)
        return code
