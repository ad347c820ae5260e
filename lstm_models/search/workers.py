"""Local workers: Keras Tuner's chief/worker engine, the chief in this process, N workers beside it.

The chief runs the oracle as a gRPC service on 127.0.0.1 (a free port) and starts N worker
processes (``lstm-models sweep SPEC --worker 127.0.0.1:PORT --worker-id worker-I``). Each worker
asks the oracle for trials, trains them with its own TensorFlow threads (the cores shared out),
and records each trial as a nested run of the sweep's one parent run, tagged with the worker's
id, host and process. Checkpoints go to the sweep's folder, which all processes share. When
every worker has exited, the chief reads their trial records and finishes the sweep as a
single process would (test scores, baselines, export).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lstm_models.search.recorder import TrialRecorder, TrialResult, fail_runs
from lstm_models.search.state import STATE_FILE, SweepState, load_state
from lstm_models.tracking.server import free_port

WORKERS_FOLDER = "workers"
PARENT_ENV = "LSTM_MODELS_PARENT_RUN"  # how a local worker learns the sweep's parent run


@dataclass(frozen=True)
class WorkerPlan:
    """How the chief starts its workers.

    Args:
        count: how many worker processes.
        argv: the ``lstm-models`` command line of the chief (its spec and flags), to which each
            worker adds ``--worker HOST:PORT --worker-id ID``.
        environ: the environment the workers start from.
        cores: the cores this machine has (shared out between the workers).
        gpus: the GPUs the workers take in turn (``CUDA_VISIBLE_DEVICES``), none on a CPU machine.
    """

    count: int
    argv: tuple[str, ...]
    environ: dict = field(default_factory=dict)
    cores: int = 1
    gpus: tuple[str, ...] = ()

    def worker_env(self, index: int, parent_run_id: str) -> dict:
        """The environment of worker ``index`` (0-based): its threads, its GPU, the parent run."""
        threads = str(max(1, self.cores // self.count))
        env = {**self.environ, "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1",
               "OMP_NUM_THREADS": threads, PARENT_ENV: parent_run_id}
        if self.gpus:  # none here: the variable is left as it was
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[index % len(self.gpus)]
        return env

    def command(self, index: int, port: int) -> list[str]:
        return [sys.executable, "-m", "lstm_models", *self.argv, "--worker", f"127.0.0.1:{port}",
                "--worker-id", worker_id(index)]


def worker_id(index: int) -> str:
    return f"worker-{index + 1}"


def gpu_ids(environ: dict) -> tuple[str, ...]:
    """The GPUs to share out: ``CUDA_VISIBLE_DEVICES`` if set, else those ``nvidia-smi -L`` lists."""
    given = environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return tuple(g.strip() for g in given.split(",") if g.strip() and g.strip() != "-1")
    if not shutil.which("nvidia-smi"):
        return ()
    done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    return tuple(str(i) for i, line in enumerate(done.stdout.splitlines()) if line.startswith("GPU "))


def check_chief(address: str, timeout: float = 10.0) -> None:
    """A worker's chief must answer at ``HOST:PORT`` before the worker loads anything.

    Keras Tuner's client would otherwise wait up to an hour for an oracle that is not there.
    """
    from lstm_models.errors import ConfigError

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--worker {address}: expected HOST:PORT of the chief")
    deadline = time.monotonic() + timeout
    while True:  # a chief that has just started may take a moment to listen
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ConfigError(f"--worker {address}: cannot reach the chief's oracle there "
                                  f"({exc.strerror or exc}); is the chief running, and is this its port?") from None
            time.sleep(0.5)


def check_same_spec(folder: Path, spec: dict) -> None:
    """A worker trains the chief's sweep: its spec (with its flags) must be the chief's, as recorded
    in the sweep's folder, or `ConfigError` naming the first differences."""
    from lstm_models.errors import ConfigError
    from lstm_models.search.state import has_state, spec_changes

    if not has_state(folder):
        raise ConfigError(f"--worker: no sweep of {spec['name']} in {folder}; a worker needs the chief's spec, "
                          "flags and --workdir")
    changes = spec_changes(load_state(folder).spec, spec)
    if changes:
        raise ConfigError(f"--worker: the spec differs from the chief's ({'; '.join(changes[:3])}); "
                          "start the worker with the chief's spec and flags")


def run_workers(plan: WorkerPlan, oracle, recorder: TrialRecorder, model_spec: Callable, folder: Path,
                log: Callable[[str], None]) -> None:
    """Serve ``oracle`` to ``plan.count`` worker processes until all have exited; keep their trials.

    A worker that dies (``kill -9``, a crash) loses no trial: its running trial goes back to the
    oracle's queue, its run is closed FAILED and tagged ``lost``, and a new worker takes its place,
    so another worker runs that trial with the same hyperparameters. ``model_spec``: ``hp -> ModelSpec``.
    """
    from lstm_models.search.tuner import serve_oracle

    port = free_port()
    log(f"chief: oracle on 127.0.0.1:{port}, {plan.count} workers, "
        f"{max(1, plan.cores // plan.count)} TensorFlow thread(s) each")
    supervisor = _Supervisor(plan, port, oracle, recorder, log)
    try:
        serve_oracle(oracle, "127.0.0.1", port, done=supervisor.done, started=supervisor.start)
    finally:
        supervisor.stop()
    for result in gather(folder):
        if result.status == "RUNNING":  # its worker died without closing it; the chief closed its run
            result.status, result.lost, result.error = "FAILED", True, LOST
        result.spec = model_spec(oracle.trials[result.trial_id].hyperparameters.copy())
        recorder.keep(result)
        recorder.save(result)
    recorder.save()


LOST = "the worker training this trial died (kill -9, crash or power loss); another worker ran it again"


class _Supervisor:
    """Starts the workers, notices a dead one, and hands its trial to a new worker."""

    def __init__(self, plan: WorkerPlan, port: int, oracle, recorder: TrialRecorder, log: Callable[[str], None]):
        self.plan, self.port, self.oracle, self.recorder, self.log = plan, port, oracle, recorder, log
        self.procs: dict[str, subprocess.Popen] = {}
        self.started = 0

    def start(self) -> None:
        """Start the workers (once the oracle listens)."""
        for _ in range(self.plan.count):
            self._start()

    def _start(self) -> None:
        index, self.started = self.started, self.started + 1
        env = self.plan.worker_env(index, self.recorder.state.parent_run_id)
        self.procs[worker_id(index)] = subprocess.Popen(self.plan.command(index, self.port), env=env)

    def done(self) -> bool:
        """Polled by the oracle's server loop: True once every worker has exited."""
        from lstm_models.search.tuner import requeue_worker_trial

        for wid, proc in list(self.procs.items()):
            if proc.poll() is None or proc.returncode == 0:
                continue
            del self.procs[wid]
            trial_id = requeue_worker_trial(self.oracle, wid)
            if trial_id is None:
                self.log(f"chief: {wid} exited with code {proc.returncode} between trials")
                continue
            tracker, parent = self.recorder.tracker, self.recorder.state.parent_run_id
            fail_runs(tracker, tracker.running_trials(parent, {"worker": wid}) if parent else [], LOST,
                      {"lost": "true"})
            self.log(f"chief: {wid} died (exit code {proc.returncode}) during trial {int(trial_id) + 1}; "
                     f"a new worker runs it again")
            self._start()
        return all(proc.poll() is not None for proc in self.procs.values())

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)


def gather(folder: Path) -> list[TrialResult]:
    """Every worker's trial records, in trial order (their specs are filled in by the caller)."""
    out = []
    for state_file in sorted((Path(folder) / WORKERS_FOLDER).glob(f"*/{STATE_FILE}")):
        for rec in load_state(state_file.parent).trials.values():
            out.append(TrialResult(spec=None, **rec))
    return sorted(out, key=lambda t: (t.number, t.status == "FINISHED"))


def worker_tags(wid: str) -> dict[str, str]:
    """The tags of every trial run a worker trains: which worker, on which host, in which process."""
    return {"worker": wid, "worker_host": socket.gethostname(), "worker_pid": str(os.getpid())}


def run_worker(spec, data, tracker, folder: Path, chief: str, wid: str, parent_run_id: str, hooks) -> int:
    """Join the chief at ``chief`` (HOST:PORT) and train the trials its oracle hands out.

    Args:
        spec: the same sweep spec as the chief's. data: the loaded splits.
        tracker: the same tracking store as the chief's; trials become runs of ``parent_run_id``.
        folder: the sweep's folder (shared with the chief: checkpoints, this worker's records).
        wid: this worker's id. hooks: progress lines, signals, clock (`lstm_models.search.run.Hooks`).

    Returns:
        How many trials this worker trained.
    """
    import keras_tuner as kt

    from lstm_models.errors import SearchDone
    from lstm_models.search.hypermodel import SweepHyperModel
    from lstm_models.search.limits import Limits
    from lstm_models.search.tuner import make_tuner, join_chief
    from lstm_models.tasks import task_for

    host, port = chief.rsplit(":", 1)
    join_chief(host, port, wid)
    tracker.join_sweep(parent_run_id)
    task = task_for(data)
    inputs = task.make_inputs(spec.dataset.options.get("max_tokens"))
    hypermodel = SweepHyperModel(spec, inputs, task.batches(inputs))
    own = Path(folder) / WORKERS_FOLDER / wid
    state = SweepState(name=spec.name, parent_run_id=parent_run_id, tracking_uri=tracker.uri, spec=spec.to_dict())
    recorder = TrialRecorder(spec.objective, spec.direction, spec.tuner.max_trials, tracker, state, own, hooks.log,
                             hooks.on_trial, run_tags=worker_tags(wid), number_from_id=True)
    limits = Limits(spec.name, spec.tuner.max_trials, spec.tuner.time_budget, hooks.clock, hooks.log)
    objective = kt.Objective(spec.objective, direction=spec.direction)
    tuner = make_tuner(spec.tuner, objective, hypermodel, recorder, limits, hooks.guard, folder)
    try:
        tuner.search(epochs=spec.tuner.max_epochs, verbose=0)
    except SearchDone:
        pass
    recorder.save()
    return len(recorder.trials)
