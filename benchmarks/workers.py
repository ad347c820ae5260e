"""`make bench`'s workers section: `make sweep`'s specs in one process and with 2 workers, trials per
hour with 1 and 2 workers, PostgreSQL against SQLite, and a 16-worker simulation of what the chief
and the tracking server can take.

0. ``defaults``: each spec `make sweep` runs, as it runs it (verdict included), in one process
   (``--workers 0``) and with 2 local workers, side by side in this one run: the whole command's
   wall time, the sweep's own ``Time:`` line and the exported model. The faster of the two is
   the spec's ``tuner.workers``.
1. ``sweeps``: the default sentiment sweep, run side by side in this one run: ``--workers 1`` and
   ``--workers 2`` on a SQLite store, and ``--workers 2`` on `lstm-models tracking-server`
   (MLflow on PostgreSQL). Trials per hour count the finished trials over the search's span
   (first trial run opened to last one closed, from the runs' own times).
2. A simulation past this machine: N worker processes on 127.0.0.1 run trials of trivial size.
   Against the chief's oracle (our `Watched` random oracle, served by `serve_oracle`, one gRPC
   thread), each trial is a real worker's calls: ask for a trial, report 3 epochs, one
   heartbeat, end it; the chief's loop finds each ended trial's record as its supervisor does
   (without the store's look-up, measured below). Against the tracking store (our `MLflowTracker`), each trial opens a
   run, logs 3 epochs of metrics, a checkpoint file, its record, and closes it.

    python benchmarks/workers.py [--parts defaults,sweeps,simulation] [--workers 16] [--seconds 20]
                                 [--checkpoint-mb 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from report_bench import best_test, defaults_table, replace_between, update_page  # noqa: E402
RESULTS = ROOT / "benchmarks" / "results"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
       "MLFLOW_DISABLE_TELEMETRY": "true"}  # as the CLI sets it: its thread races requests over os.environ
EPOCHS = 3  # epochs per simulated trial
PARTS = ("defaults", "sweeps", "simulation")
README = ROOT / "README.md"
START, END = "<!-- workers:start -->", "<!-- workers:end -->"  # where make sweep's table goes in the README


def _free_port() -> int:
    from lstm_models.tracking.server import free_port

    return free_port()


def _trial_runs(uri: str, experiment: str) -> tuple:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=10_000)
    parent = max((r for r in runs if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.start_time)
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
                    and r.data.tags.get("verdict") != "true"]  # the search's trials, not the verdict's seed runs


def sweep(spec: Path, uri: str, workers: int, folder: Path, label: str) -> dict:
    """One run of ``spec`` with ``workers``; its trials per hour from the runs' own times."""
    import yaml

    log = folder / f"{label}.log"
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call([sys.executable, "-m", "lstm_models", "sweep", str(spec), "--tracking-uri", uri,
                                "--workers", str(workers), "--workdir", str(folder / f"runs-{label}"),
                                "--output", str(folder / f"exports-{label}"), "--cache-dir",
                                str(ROOT / "datasets" / "cache")], env=ENV, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{label}: the sweep exited with {code}; see {log}")
    parent, runs = _trial_runs(uri, yaml.safe_load(spec.read_text())["name"])
    done = [r for r in runs if r.info.status == "FINISHED"]
    span = (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
    return {"label": label, "workers": workers, "finished": len(done), "runs": len(runs),
            "search_seconds": span, "wall_seconds": wall, "trials_per_hour": len(done) * 3600 / span,
            "mean_trial_seconds": statistics.mean((r.info.end_time - r.info.start_time) / 1000 for r in done),
            "time_line": next((line.strip() for line in log.read_text().splitlines() if line.startswith("Time: ")), ""),
            "exported": parent.data.tags.get("best_trial", ""), **best_test(parent)}


def _start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    pg = Path(tempfile.mkdtemp(prefix="lstm-models-bench-"))
    pg.chmod(0o711)  # PostgreSQL runs as its own user and must enter it
    port, log = _free_port(), folder / f"server-{time.time():.0f}.log"
    # Its output goes to a file: a pipe nobody reads fills up and stops the server mid-benchmark.
    proc = subprocess.Popen([sys.executable, "-m", "lstm_models", "tracking-server", "--port", str(port), "--db-dir",
                             str(pg / "pg"), "--artifacts", str(folder / "server-artifacts")], env=ENV,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while "tracking URI: " not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the tracking server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.communicate(timeout=120)


def defaults(folder: Path) -> dict:
    """`make sweep`'s specs in one process and with 2 local workers, one after the other."""
    import re

    make = (ROOT / "Makefile").read_text()
    specs = re.search(r"^SPECS\s*:=\s*(.+)$", make, re.M).group(1).split()
    rows = []
    for spec in specs:
        for workers in (0, 2):
            label = f"{Path(spec).stem}, " + ("one process" if workers == 0 else f"{workers} workers")
            rows.append({"spec": spec, **sweep(ROOT / spec, f"sqlite:///{folder}/default-{len(rows)}.db", workers,
                                                folder, label)})
    return {"when": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}


def sweeps(spec: Path, folder: Path) -> dict:
    rows = [sweep(spec, f"sqlite:///{folder}/one.db", 1, folder, "1 worker, SQLite"),
            sweep(spec, f"sqlite:///{folder}/two.db", 2, folder, "2 workers, SQLite")]
    server, uri = _start_server(folder)
    try:
        rows.append(sweep(spec, uri, 2, folder, "2 workers, PostgreSQL server"))
    finally:
        _stop(server)
    one, two, pg = rows
    return {"spec": str(spec.relative_to(ROOT)), "rows": rows,
            "speedup_2_workers": two["trials_per_hour"] / one["trials_per_hour"],
            "postgres_seconds_per_trial": pg["search_seconds"] / pg["runs"] - two["search_seconds"] / two["runs"]}


# --- the simulation: N processes on 127.0.0.1 ---

def _chief(port: int, folder: str, until: float) -> None:
    import keras_tuner as kt

    from lstm_models.search.oracle import Watched, reopen
    from lstm_models.search.service import serve_oracle

    oracle = type("O", (Watched, kt.oracles.RandomSearchOracle), {"trial_cap": 10**7})(
        objective=kt.Objective("val_loss", "min"), max_trials=10**7, seed=1)
    oracle._set_project_dir(folder, "tuner")
    hp = kt.HyperParameters()
    hp.Choice("cell", ["lstm", "gru", "rnn"])
    hp.Int("units", 1, 10**6)
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    oracle.update_space(hp)

    def done() -> bool:  # as the chief's supervisor, which finds each ended trial's record (no store here)
        for trial_id in list(oracle.moved_on):
            reopen(oracle, trial_id, recorded=True)
        return time.time() > until

    serve_oracle(oracle, "127.0.0.1", port, done=done)


def _oracle_worker(port: int, wid: str, start: float, seconds: float, out: str) -> None:
    from keras_tuner.src.distribute.oracle_client import OracleClient

    from lstm_models.interrupt import Deferral
    from lstm_models.search.calls import release_calls
    from lstm_models.search.service import join_chief

    join_chief("127.0.0.1", str(port), wid)
    client = OracleClient(None)
    release_calls(client, Deferral())  # signed and patient, as a sweep's worker calls
    time.sleep(max(0.0, start - time.time()))
    trials = 0
    while time.time() < start + seconds:
        trial = client.create_trial(wid)
        for epoch in range(EPOCHS):
            client.update_trial(trial.trial_id, {"val_loss": 1.0 / (epoch + 1)}, step=epoch)
        client.get_trial(trial.trial_id)  # a heartbeat
        trial.status = "COMPLETED"
        client.end_trial(trial)
        trials += 1
    Path(out).write_text(json.dumps({"trials": trials, "end": time.time()}))


def _tracking_worker(uri: str, parent: str, wid: str, start: float, seconds: float, checkpoint: str, out: str) -> None:
    from lstm_models.tracking.mlflow_store import MLflowTracker

    tracker = MLflowTracker(uri)
    tracker.join_sweep(parent)
    time.sleep(max(0.0, start - time.time()))
    runs = 0
    while time.time() < start + seconds:
        run = tracker.start_trial(f"{wid}-{runs}", {f"p{i}": i for i in range(10)}, {"worker": wid, "trial_id": "0"})
        for epoch in range(EPOCHS):
            tracker.log_metrics(run, {f"m{i}": epoch + i for i in range(6)}, step=epoch)
        tracker.log_artifact(run, checkpoint, "checkpoint")
        tracker.set_tags(run, {"trial_record": json.dumps({"trial_id": "0", "status": "FINISHED"})})
        tracker.end_run(run, "FINISHED")
        runs += 1
    Path(out).write_text(json.dumps({"runs": runs, "end": time.time()}))


def _fan_out(args_of, n: int, start: float, seconds: float, folder: Path) -> list[dict]:
    for old in folder.glob("w*.json"):  # the previous phase's counts
        old.unlink()
    procs = [subprocess.Popen([sys.executable, __file__, *map(str, args_of(i, folder / f"w{i}.json"))], env=ENV)
             for i in range(n)]
    for proc in procs:
        try:
            proc.wait(timeout=max(1.0, start + seconds + 600 - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SystemExit(f"a simulated worker did not finish within 10 minutes of its window: {proc.args}")
    return [json.loads((folder / f"w{i}.json").read_text()) for i in range(n)]


def simulate(n: int, seconds: float, checkpoint_mb: float, folder: Path) -> dict:
    warmup = 20 + 6 * n  # n processes import Keras Tuner / MLflow on this machine's cores first
    port, start = _free_port(), time.time() + warmup
    chief = subprocess.Popen([sys.executable, __file__, "_chief", str(port), str(folder / "oracle"),
                              str(start + seconds + 30)], env=ENV)
    time.sleep(5)
    counts = _fan_out(lambda i, out: ("_oracle_worker", port, f"sim-{i}", start, seconds, out), n, start, seconds,
                      folder)
    chief.wait(timeout=300)
    trials = sum(c["trials"] for c in counts)  # over the window and the trials still running at its end
    result = {"workers": n, "seconds": seconds, "oracle_trials_per_s": trials / (max(c["end"] for c in counts) - start),
              "oracle_calls_per_trial": EPOCHS + 3}
    checkpoint = folder / "checkpoint.weights.h5"
    checkpoint.write_bytes(os.urandom(int(checkpoint_mb * 2**20)))
    server, http = _start_server(folder)
    try:
        for label, uri in (("postgres_server", http), ("sqlite", f"sqlite:///{folder}/sim.db")):
            from lstm_models.tracking.mlflow_store import MLflowTracker

            parent = MLflowTracker(uri).start_sweep(f"sim-{label}", "sweep", {}, {})
            start = time.time() + warmup
            counts = _fan_out(lambda i, out: ("_tracking_worker", uri, parent, f"sim-{i}", start, seconds,
                                              checkpoint, out), n, start, seconds, folder)
            span = max(c["end"] for c in counts) - start  # the window, and the runs still open at its end
            result[f"{label}_runs_per_s"] = sum(c["runs"] for c in counts) / span
    finally:
        _stop(server)
    result["checkpoint_mb"] = checkpoint_mb
    return result


def bottlenecks(sim: dict, trial_seconds: float) -> dict:
    """At how many workers of a real sweep (one trial per ``trial_seconds`` each) each part saturates."""
    return {"trial_seconds": trial_seconds, "chief": sim["oracle_trials_per_s"] * trial_seconds,
            "postgres_server": sim["postgres_server_runs_per_s"] * trial_seconds,
            "sqlite": sim["sqlite_runs_per_s"] * trial_seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "sweeps" / "sentiment.yaml"))
    parser.add_argument("--workers", type=int, default=16, help="simulated workers (default 16)")
    parser.add_argument("--seconds", type=float, default=20.0, help="each simulation's measured window")
    parser.add_argument("--checkpoint-mb", type=float, default=4.0, help="simulated checkpoint size")
    parser.add_argument("--parts", type=lambda v: v.split(","), default=list(PARTS),
                        help=f"comma-separated parts among {', '.join(PARTS)} (default: all; the others' figures are kept)")
    args = parser.parse_args(argv)
    if set(args.parts) - set(PARTS):
        parser.error(f"--parts: expected some of {', '.join(PARTS)}; got {','.join(args.parts)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "workers.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result["cpus"] = os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="lstm-models-bench-") as tmp:
        for part in args.parts:  # each part's figures are written as soon as it ends
            if part == "defaults":
                result["defaults"] = defaults(Path(tmp))
            elif part == "sweeps":
                result["sweeps"] = sweeps(Path(args.spec).resolve(), Path(tmp))
            else:
                result["simulation"] = simulate(args.workers, args.seconds, args.checkpoint_mb, Path(tmp))
            path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if "sweeps" in result and "simulation" in result:
        trial = statistics.mean(r["mean_trial_seconds"] for r in result["sweeps"]["rows"])
        result["bottleneck_workers"] = bottlenecks(result["simulation"], trial)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    update_page(RESULTS)
    if "defaults" in result and replace_between(README, START, END, f"Measured {result['defaults']['when']} "
                                                 f"by `make bench-workers`:\n\n{defaults_table(result['defaults'])}"):
        print(f"updated the workers table in {README}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):  # one of the simulation's processes
        role, rest = sys.argv[1], sys.argv[2:]
        if role == "_chief":
            _chief(int(rest[0]), rest[1], float(rest[2]))
        elif role == "_oracle_worker":
            _oracle_worker(int(rest[0]), rest[1], float(rest[2]), float(rest[3]), rest[4])
        else:
            _tracking_worker(rest[0], rest[1], rest[2], float(rest[3]), float(rest[4]), rest[5], rest[6])
        sys.exit(0)
    sys.exit(main())
