"""The command line: ``lstm-models sweep | ui | datasets | gates | gradients``. The only code that reads argv or the environment.

``sweep`` checks everything it can before it trains, in this order: the spec, the output and
state folders, the tracking store, the data; `run_sweep` then checks the sweep state
(``--resume`` / ``--fresh``) before it writes anything. SIGINT and SIGTERM raise `Interrupted`
through a `Deferral` (see `lstm_models.interrupt`); the sweep marks its runs KILLED and
the command exits 130 or 143 after printing the command that resumes.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shlex
import signal
import socket
import sys

from lstm_models.errors import ConfigError, DataError, Interrupted, LstmModelsError, TrackingLost
from lstm_models.spec.sections import PRUNERS, TUNERS
from lstm_models.tracking.tracker import NO_TRACKING

from lstm_models.cli.commands import (DEFAULT_TRACKING_URI, cmd_datasets, cmd_gates, cmd_gradients, cmd_sweep,
                                      cmd_tracking_server)
from lstm_models.cli.ui import cmd_ui


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstm-models", description="Sweeps over LSTM, GRU and SimpleRNN models.",
                                     allow_abbrev=False)  # a local worker's flags are the chief's, spelled out
    sub = parser.add_subparsers(dest="command", required=True)
    _sweep_parser(sub)
    _server_parser(sub)
    _ui_parser(sub)
    datasets = sub.add_parser("datasets", help="list the datasets, or show one spec's splits", allow_abbrev=False)
    datasets.add_argument("--cache-dir", default="datasets/cache", help="download cache (default datasets/cache)")
    shows = datasets.add_subparsers(dest="action")
    show = shows.add_parser("show", help="load a spec's dataset and print its splits", allow_abbrev=False)
    show.add_argument("spec", help="a sweep spec, e.g. sweeps/co2.yaml")
    show.add_argument("--cache-dir", default=argparse.SUPPRESS, help="download cache (default datasets/cache)")
    gates = sub.add_parser("gates", allow_abbrev=False,
                           help="every gate of an exported model's recurrent layers for one input")
    gates.add_argument("export", help="an export folder, e.g. exports/sentiment")
    given = gates.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", help="a sentence (text models)")
    given.add_argument("--values", help="lookback comma-separated values, a:b per step for several channels (forecasting)")
    gates.add_argument("--out", default="gates", help="where gates.csv and gates.png go (default gates/)")
    grads = sub.add_parser("gradients", allow_abbrev=False,
                           help="||dh_T/dx_t|| per step for fresh cells or a trained model")
    grads.add_argument("--cells", help="fresh cells to probe, e.g. lstm,gru,rnn (default: all three, "
                                       "none when --trained is given)")
    grads.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    grads.add_argument("--units", type=int, default=32, help="units of the fresh cells (default 32)")
    grads.add_argument("--trained", help="an export folder: probe its trained recurrent stack")
    grads.add_argument("--batch", type=int, default=16, help="random sequences averaged over (default 16)")
    grads.add_argument("--out", default="gradients", help="where gradients.csv and .png go (default gradients/)")
    return parser


def _sweep_parser(sub) -> None:
    sweep = sub.add_parser("sweep", help="run the sweep a spec describes", allow_abbrev=False)
    sweep.add_argument("spec", help="a sweep spec, e.g. sweeps/sentiment.yaml")
    sweep.add_argument("--max-trials", type=int)
    sweep.add_argument("--max-epochs", type=int)
    sweep.add_argument("--tuner", choices=TUNERS)
    sweep.add_argument("--seed", type=int)
    sweep.add_argument("--time-budget", metavar="DURATION",
                       help="start no trial after this much wall-clock time, e.g. 90s, 30m, 2h")
    sweep.add_argument("--verdict-seeds", type=int, metavar="K",
                       help="train each cell's best configuration again with K seeds for the cell verdict "
                            "(0: no verdict; default: the spec's verdict.seeds)")
    sweep.add_argument("--pruning", choices=PRUNERS,
                       help="stop trials worse than the median at an epoch, or not (default: the spec's pruning.kind)")
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
    sweep.add_argument("--workers", type=int, metavar="N",
                       help="train in N worker processes on this machine (Keras Tuner's chief/worker engine; "
                            "0: in this one process; default: the spec's tuner.workers)")
    sweep.add_argument("--chief", metavar="HOST:PORT",
                       help="serve the search's oracle there; workers on other hosts join it with --worker")
    sweep.add_argument("--worker", metavar="HOST:PORT", help="join the chief at HOST:PORT and train its trials")
    sweep.add_argument("--worker-id", default=f"worker-{socket.gethostname()}-{os.getpid()}",
                       help="this worker's id, unique in the sweep (default worker-HOSTNAME-PID)")
    sweep.add_argument("--verdict-jobs", metavar="FILE", help=argparse.SUPPRESS)  # a chief's local workers, after the search
    sweep.add_argument("--worker-timeout", metavar="DURATION",
                       help="a trial unheard of this long goes to another worker (default 2m; spec key tuner.worker_timeout)")
    sweep.add_argument("--credentials", metavar="FILE",
                       help="USER:PASSWORD for a tracking server with authentication, in a file of mode 600 "
                            "(or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)")
    sweep.add_argument("--allow-public", action="store_true",
                       help="allow --chief to be an address other machines reach (a private network only)")


def _server_parser(sub) -> None:
    server = sub.add_parser("tracking-server", allow_abbrev=False,
                            help="an MLflow tracking server on PostgreSQL, proxied artifacts")
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    server.add_argument("--artifacts", default="mlflow/server-artifacts",
                        help="where the server stores artifacts (default mlflow/server-artifacts)")
    db = server.add_mutually_exclusive_group()
    db.add_argument("--db-url", help="an existing PostgreSQL database, postgresql://USER@HOST:PORT/DB")
    db.add_argument("--db-dir", default="mlflow/postgres",
                    help="a database cluster in this folder, created on the first run (default mlflow/postgres)")
    server.add_argument("--auth", action="store_true",
                        help="MLflow's basic authentication: the admin is the user of --credentials FILE (mode 600) "
                             "or of MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    server.add_argument("--credentials", metavar="FILE", help="USER:PASSWORD, in a file of mode 600")
    server.add_argument("--allow-public", action="store_true",
                        help="allow --host to be an address other machines reach (a private network only)")


def _ui_parser(sub) -> None:
    ui = sub.add_parser("ui", allow_abbrev=False,
                        help="print the link to each experiment's runs table, then start the MLflow UI")
    ui.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                    help=f"the store to show, or a tracking server's http:// URI (default {DEFAULT_TRACKING_URI})")
    ui.add_argument("--host", default="127.0.0.1", help="a loopback address to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    ui.add_argument("--links-only", action="store_true", help="print the links and exit, without starting the UI")


def _command(argv: list[str], *extra: str) -> str:
    """The command line that was run, without ``--fresh`` or ``--resume``, then ``extra``."""
    program = [sys.executable, "-m", "lstm_models"] if sys.argv[0].endswith("__main__.py") else [sys.argv[0]]
    return shlex.join(program + [a for a in argv if a not in ("--fresh", "--resume")] + list(extra))


def _interrupted(args: argparse.Namespace, argv: list[str]) -> str:
    """What an interrupted sweep command left, and how to go on: a chief or a single process is
    resumed; a worker's trial goes back to its chief, which a worker on another host joins again."""
    folder = getattr(args, "state_folder", None)
    if getattr(args, "verdict_jobs", None):  # started by its chief, maybe before the chief listened
        what = "'s running trial or seed run is marked KILLED" if folder else " had not joined the sweep yet"
        return (f": {args.worker_id}{what}; the chief that started it continues or stops the sweep (a stopped one "
                "is resumed with the chief's command and --resume)")
    if folder is None:
        return " before the sweep started; nothing to resume"
    if getattr(args, "worker", None):
        return (f": {args.worker_id}'s running trial is marked KILLED and goes back to the chief at "
                f"{args.worker} for another worker. Join the sweep again with:\n  {_rejoin(args, argv)}")
    return (": the running trial and the sweep are marked KILLED; "
            f"finished trials are kept in {folder}. Resume with:\n  {_command(argv, '--resume')}")


def _rejoin(args: argparse.Namespace, argv: list[str]) -> str:
    """A worker's command with its id: joining again with it, the worker gets its own trial back."""
    same_id = [] if any(a.startswith("--worker-id") for a in argv) else ["--worker-id", args.worker_id]
    return _command(argv, *same_id)


def _after_lost(args: argparse.Namespace, argv: list[str]) -> str:
    """What a command whose tracking server went away left, and how to go on once it answers."""
    folder = getattr(args, "state_folder", None)
    if getattr(args, "verdict_jobs", None):  # a chief's local worker: its chief meets the loss too
        return f"; {args.worker_id} stopped, its chief stops the sweep"
    if folder is None:  # not a sweep
        return ""
    if getattr(args, "worker", None):
        return (f"; {args.worker_id} stopped. Once it answers, join the sweep again (it gets its trial back) "
                f"with:\n  {_rejoin(args, argv)}")
    return (f"; the sweep stopped, its finished trials kept in {folder}. Once it answers, resume with:\n  "
            f"{_command(argv, '--resume')}")


def _install_signal_handlers(guard) -> None:
    """SIGINT and SIGTERM raise `Interrupted` (exit 130 / 143), deferred by ``guard`` while it holds."""
    def handler(signum, frame):
        guard.interrupt(Interrupted(signum))

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run() -> None:
    """Entry point of ``lstm-models`` and ``python -m lstm_models``: `main`, then exit with its code.

    Once a command has returned, the process ends after the atexit handlers (MLflow's among them)
    without Python's finalization: tearing down TensorFlow's and MLflow's modules took 1.6 s after
    a sweep's last line, in the chief and in each worker. A command that raises exits as usual.
    """
    returned: list[int] = []

    def exit_now() -> None:  # registered first, so it runs after every other atexit handler
        if returned:
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(returned[0])

    atexit.register(exit_now)
    returned.append(int(main() or 0))
    sys.exit(returned[0])


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (`run` is the program's entry point)."""
    from lstm_models.interrupt import Deferral

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # MLflow prints "View run ... at URL" for every run it closes on a server: two lines per trial.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # MLflow 3.17's telemetry thread sets and unsets an environment variable while requests reads
    # the environment in another thread: a KeyError that failed a run's write (benchmarks/workers.py).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    guard = Deferral()
    _install_signal_handlers(guard)
    try:
        commands = {"sweep": lambda a: cmd_sweep(a, argv, guard), "datasets": cmd_datasets,
                    "gates": cmd_gates, "gradients": cmd_gradients, "tracking-server": cmd_tracking_server,
                    "ui": cmd_ui}
        return commands[args.command](args)
    except LstmModelsError as exc:
        print(f"lstm-models: error: {exc}{_after_lost(args, argv) if isinstance(exc, TrackingLost) else ''}",
              file=sys.stderr)
        return 2 if isinstance(exc, (ConfigError, DataError)) else 1
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the message below must get out
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        name, code = (signal.Signals(exc.signum).name, exc.exit_code) if isinstance(exc, Interrupted) else ("SIGINT", 130)
        print(f"lstm-models: interrupted by {name}{_interrupted(args, argv)}", file=sys.stderr, flush=True)
        return code
