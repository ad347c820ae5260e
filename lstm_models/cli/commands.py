"""The commands behind ``lstm-models sweep | tracking-server | datasets | gates | gradients``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

from lstm_models.cli.roles import check_roles, settle_workers, worker_plan
from lstm_models.errors import ConfigError, check_writable
from lstm_models.spec.sections import CELL_NAMES

DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return done.stdout.strip() if done.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _ui_command(uri: str) -> str:
    if uri == DEFAULT_TRACKING_URI:
        return "make ui   (MLflow UI on http://127.0.0.1:5000)"
    return f"lstm-models ui --tracking-uri {uri}   (each experiment's runs-table link, then the UI)"


def cmd_sweep(args: argparse.Namespace, argv: list[str], guard) -> int:
    from lstm_models.spec.sweep import load_sweep

    chief_pid = os.getppid()  # a local worker's chief, which started it: read before it may exit
    # 1. the spec, 2. the folders, 3. the tracking store, 4. the data; run_sweep checks the state.
    check_roles(args)
    spec = load_sweep(args.spec).with_overrides(
        max_trials=args.max_trials, max_epochs=args.max_epochs, kind=args.tuner, seed=args.seed,
        time_budget=args.time_budget, worker_timeout=args.worker_timeout, verdict_seeds=args.verdict_seeds,
        pruning=args.pruning)
    folder = Path(args.workdir) / spec.name
    settle_workers(args, spec.tuner.workers, folder)
    if args.worker:
        _reach_chief(args, chief_pid)
    _use_credentials(args)
    output = Path(args.output)
    check_writable(output, f"--output {output}")
    check_writable(folder, f"--workdir {args.workdir}")

    from lstm_models.tracking.tracker import make_tracker

    tracker = make_tracker(args.tracking_uri, guard)
    tracker.check()
    from lstm_models.data import load_dataset
    from lstm_models.search.worker import check_same_data, find_sweep

    if args.worker:
        args.parent_run_id, chiefs_data = find_sweep(tracker, spec.to_dict(), args.worker)
    loading = time.perf_counter()
    data = load_dataset(spec.dataset, Path(args.cache_dir))
    if args.worker:
        check_same_data(chiefs_data, data)

    from lstm_models.search.run import Hooks, SweepPaths, run_sweep
    from lstm_models.tracking.report import format_leaderboard

    args.state_folder = folder
    mode = "resume" if args.resume else "fresh" if args.fresh else "new"
    commit = _git_commit()
    hooks = Hooks(log=lambda line: print(line, flush=True), guard=guard,
                  tags={"git_commit": commit, "mlflow.source.git.commit": commit},
                  data_seconds=time.perf_counter() - loading)
    if args.worker:
        return _work(args, spec, data, tracker, folder, hooks)
    result = run_sweep(spec, data, tracker, SweepPaths(output, folder), mode, hooks, worker_plan(args, argv))
    from lstm_models.search.timing import summary  # Keras: loaded only once the start checks passed

    print()
    print(format_leaderboard(result))
    print(summary(result.phases, [t.timing for t in result.trials if t.timing]))
    if result.stop_reason:
        print(f"Stopped early: {result.stop_reason}")
    print(f"SavedModel: {result.export_dir}  (tf.saved_model.load(path).serve(x))")
    if tracker.enabled:
        print(f"MLflow: experiment {spec.name!r}, parent run {result.parent_run_id} in {args.tracking_uri}")
        print(f"Open the UI: {_ui_command(args.tracking_uri)}")
    if result.registration:
        print(_served(result.registration, args.tracking_uri))
    return 0


def _reach_chief(args: argparse.Namespace, chief_pid: int) -> None:
    """A worker goes on once its chief answers. A chief's local worker (``--verdict-jobs``) is
    started before its chief listens: it loads its libraries meanwhile, then waits as long as
    its chief (``chief_pid``) runs."""
    from lstm_models.search.worker import check_chief, load_libraries

    local = bool(args.verdict_jobs)
    if local:
        load_libraries()
    check_chief(args.worker, chief_pid=chief_pid if local else None)


def _served(registration: dict, uri: str) -> str:
    """The registered version, where the champion went, and the command that serves the champion."""
    name, version = registration["name"], registration["version"]
    make = f"make serve MODEL={name}" + ("" if uri == DEFAULT_TRACKING_URI else f" TRACKING_URI={uri}")
    return (f"Registered: models:/{name}/{version} (now models:/{name}/latest); {registration['message']}\n"
            f"Serve models:/{name}@champion: {make}   (MLFLOW_TRACKING_URI={uri} mlflow models serve "
            f"-m models:/{name}@champion --env-manager local --host 127.0.0.1 --port 5002)")


def _use_credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    """The tracking server's user: from ``--credentials FILE``, put where MLflow's client reads it
    (the environment, which local workers inherit), or from that environment."""
    from lstm_models.tracking.server import read_credentials

    if args.credentials:
        user, password = read_credentials(Path(args.credentials))
        os.environ.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return (user, password) if user and password else None


def _work(args: argparse.Namespace, spec, data, tracker, folder: Path, hooks) -> int:
    """A worker process: train what the chief's oracle hands out (the chief finishes the sweep)."""
    from lstm_models.search.worker import run_worker

    wid = args.worker_id
    hooks = dataclasses.replace(hooks, log=lambda text: print("\n".join(f"{wid}: {line}" for line in text.splitlines()),
                                                              flush=True))
    jobs = Path(args.verdict_jobs) if args.verdict_jobs else None
    trained = run_worker(spec, data, tracker, folder, args.worker, wid, args.parent_run_id, hooks, jobs)
    print(f"{wid}: {trained} trial(s) trained; the chief finishes the sweep", flush=True)
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


def cmd_gates(args: argparse.Namespace) -> int:
    from lstm_models.export import load_export, read_export
    from lstm_models.inspect.gates import gates_report
    from lstm_models.tasks import check_input

    given = check_input(read_export(args.export), args.text, args.values)  # before TensorFlow loads
    out = Path(args.out)
    check_writable(out, f"--out {out}")
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
    out = Path(args.out)
    check_writable(out, f"--out {out}")
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
    server.check_ipv4("--host", args.host)
    if server.is_public(args.host):
        if not args.allow_public:
            raise ConfigError(f"--host {args.host}: not a loopback address; MLflow's server has no authentication "
                              "by default, so binding it needs --allow-public (on a private network only)")
        exposed = ("runs need a user and password, but they and the runs cross the network unencrypted (plain HTTP)"
                   if args.auth else "anyone who reaches that port can read and write every run")
        print(f"warning: the tracking server listens on {args.host}:{args.port}; {exposed}: keep it on a private "
              "network", file=sys.stderr, flush=True)
    auth = _use_credentials(args) if args.auth else None
    if args.auth and auth is None:
        raise ConfigError("--auth: no credentials; give --credentials FILE (mode 600, one line USER:PASSWORD), or set "
                          "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    try:
        server.serve(args.host, args.port, Path(args.artifacts), args.db_url, None if args.db_url else Path(args.db_dir),
                     log=lambda line: print(line, flush=True), auth=auth)
    except KeyboardInterrupt:
        return 0  # SIGINT or SIGTERM: both servers were stopped on the way out
    return 0
