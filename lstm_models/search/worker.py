"""A worker of a sweep: find the chief's sweep, check its spec, train the trials its oracle hands out.

``lstm-models sweep SPEC --worker HOST:PORT`` finds the sweep's parent run on the tracking store
by the chief's port (`lstm_models.search.chief.sweep_tags`), refuses a spec that is not the
chief's, then asks the oracle for trials. Each trial is a nested run of that parent, tagged with
the worker's id, host and process; the worker sends heartbeats while it trains and logs each
trial's best checkpoint to its run, so that it shares no folder with the chief.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from lstm_models.errors import ConfigError, TrackingLost
from lstm_models.processes import process_gone, process_identity
from lstm_models.search.recorder import TrialRecorder, fail_runs
from lstm_models.search.state import SweepState
from lstm_models.tracking.server import check_ipv4

WORKERS_FOLDER = "workers"
UNCAPPED = 10**9  # a worker's own trial limit: none
RESTARTED = "the worker training this trial was restarted with the same id; it ran the trial again"


def parse_address(flag: str, address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{flag} {address}: expected HOST:PORT")
    check_ipv4(flag, host)
    return host, int(port)


def check_chief(address: str, timeout: float = 10.0, chief_pid: int | None = None) -> None:
    """A worker's chief must answer at ``HOST:PORT`` before the worker loads anything.

    Keras Tuner's client would otherwise wait up to an hour for an oracle that is not there. A
    chief's local worker (``chief_pid``: its parent, the chief) is started before its chief
    listens (`lstm_models.search.chief.LocalWorkers`): it waits for as long as its chief runs.
    """
    host, port = parse_address("--worker", address)
    deadline = time.monotonic() + timeout
    while True:  # a chief that has just started may take a moment to listen
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            return
        except OSError as exc:
            if chief_pid is not None and os.getppid() != chief_pid:
                raise ConfigError(f"--worker {address}: the chief (process {chief_pid}) that started this worker "
                                  "exited before its oracle listened") from None
            if chief_pid is None and time.monotonic() > deadline:
                raise ConfigError(f"--worker {address}: cannot reach the chief's oracle there "
                                  f"({exc.strerror or exc}); is the chief running, and is this its port?") from None
            time.sleep(0.1 if chief_pid is not None else 0.5)


def load_libraries() -> None:
    """Import what a worker trains and tracks with: TensorFlow, Keras, Keras Tuner, MLflow (4-5 s
    on 2 cores). A chief's local worker does it while its chief starts, before `check_chief`."""
    import lstm_models.search.tuner  # noqa: F401  (Keras Tuner, Keras and TensorFlow)
    import lstm_models.tracking.mlflow_store  # noqa: F401
    from lstm_models.tracking.mlflow_client import load_store_code

    load_store_code()


def find_sweep(tracker, spec: dict, address: str) -> tuple[str, str]:
    """The parent run a worker joins: the running sweep of its spec's name whose oracle is on
    ``address``'s port; `ConfigError` if there is none, or if its spec is not this one. Returns
    its id and its data's fingerprint, which `check_same_data` compares once the data is loaded."""
    from lstm_models.search.state import spec_changes

    host, port = parse_address("--worker", address)
    runs = [r for r in tracker.open_sweeps(spec["name"]) if r["tags"].get("oracle_port") == str(port)]
    if len(runs) > 1:
        runs = [r for r in runs if r["tags"].get("oracle_host") == host] or runs
    if not runs:
        raise ConfigError(f"--worker {address}: no running sweep of {spec['name']} in {tracker.uri} serves its oracle "
                          f"on port {port}; give the chief's --tracking-uri and spec")
    if len(runs) > 1:
        raise ConfigError(f"--worker {address}: {len(runs)} running sweeps of {spec['name']} serve an oracle on port "
                          f"{port}; stop the stale ones (their parent runs are still RUNNING)")
    changes = spec_changes(json.loads(runs[0]["tags"]["sweep_spec"]), spec)
    if changes:
        raise ConfigError(f"--worker: the spec differs from the chief's ({'; '.join(changes[:3])}); "
                          "start the worker with the chief's spec and flags")
    return runs[0]["run_id"], runs[0]["tags"].get("data_fingerprint", "")


def check_same_data(chiefs: str, data) -> None:
    """A worker on another host may read another copy of a file (another version, another
    download): its trials would be trained on other data than the chief scores them on."""
    ours = data.digest()
    if chiefs and ours != chiefs:
        raise ConfigError(f"--worker: the data differs from the chief's (fingerprint {ours}, the chief's "
                          f"{chiefs}); give the worker the same data as its chief")


def worker_tags(wid: str) -> dict[str, str]:
    """The tags of every trial run a worker trains: which worker, on which host, in which process
    (``worker_process``: `process_identity`, for `worker_gone`)."""
    return {"worker": wid, "worker_host": socket.gethostname(), "worker_pid": str(os.getpid()),
            "worker_process": process_identity(os.getpid())}


def worker_gone(tags: dict) -> bool:
    """Whether the worker that tagged a run (`worker_tags`) ran on this machine, in this pid
    namespace, in a process that has ended (an older run without the tag: not known to be gone)."""
    return process_gone(tags.get("worker_process", ""))


def run_worker(spec, data, tracker, folder: Path, chief: str, wid: str, parent_run_id: str, hooks,
               verdict_jobs: Path | None = None) -> int:
    """Join the chief at ``chief`` (HOST:PORT) and train the trials its oracle hands out; then, as a
    local worker, the verdict's seed runs (`lstm_models.search.crew`).

    Args:
        spec: the same sweep spec as the chief's. data: the loaded splits.
        tracker: the chief's tracking store (an ``http://`` server across hosts).
        folder: this worker's sweep folder (checkpoints, its own records); need not be shared.
        wid: this worker's id. parent_run_id: the sweep's (`find_sweep`).
        hooks: progress lines, signals, clock (`lstm_models.search.run.Hooks`).
        verdict_jobs: the chief's queue of seed runs (its local workers only).

    Returns:
        How many trials this worker trained.
    """
    import keras_tuner as kt

    from lstm_models.data.splits import dataset_record
    from lstm_models.search.calls import release_calls
    from lstm_models.search.hypermodel import SweepHyperModel
    from lstm_models.search.limits import Limits
    from lstm_models.search.service import join_chief
    from lstm_models.search.space import set_determinism
    from lstm_models.search.tuner import make_tuner
    from lstm_models.search.warm import long_lived_objects_frozen
    from lstm_models.tasks import task_for

    host, port = parse_address("--worker", chief)
    join_chief(host, str(port), wid)
    tracker.join_sweep(parent_run_id)
    # Runs this worker id left open were its previous process's (ids are unique in a sweep): the
    # chief gives this process that trial back (Keras Tuner hands a worker its ongoing trial).
    fail_runs(tracker, tracker.running_trials(parent_run_id, {"worker": wid}), RESTARTED, {"lost": "true"})
    set_determinism()  # as its chief did
    task = task_for(data)
    inputs = task.make_inputs(spec.dataset.options.get("max_tokens"))
    hypermodel = SweepHyperModel(spec, inputs, task.batches(inputs), hooks.guard)
    state = SweepState(name=spec.name, parent_run_id=parent_run_id, tracking_uri=tracker.uri, spec=spec.to_dict())
    recorder = TrialRecorder(spec.objective, spec.direction, spec.tuner.max_trials, tracker, state,
                             Path(folder) / WORKERS_FOLDER / wid, hooks.log, hooks.on_trial,
                             run_tags=worker_tags(wid), number_from_id=True,
                             dataset=dataset_record(data, spec.dataset.source()),
                             system_metrics=spec.tracking.system_metrics)
    # The chief's oracle caps the trials and keeps the time budget (it tells a worker to stop, and
    # so knows it left); a worker stops on its own only after failures in a row (`SweepFailed`).
    limits = Limits(spec.name, UNCAPPED, None, hooks.clock, hooks.log, worker=wid)
    objective = kt.Objective(spec.objective, direction=spec.direction)
    tuner = make_tuner(spec.tuner, objective, hypermodel, recorder, limits, hooks.guard, folder, role="worker")
    release_calls(tuner.oracle, hooks.guard)  # its oracle is a client of the chief's (Keras Tuner's `OracleClient`)
    try:  # until the oracle tells it the search is over (then the chief waits for its verdict)
        with long_lived_objects_frozen(), hooks.guard.unmasking():
            tuner.search(epochs=spec.tuner.max_epochs, verbose=0)
    except BaseException as exc:  # its trial was lost with it: its run closes, so a chief requeues it at once
        hooks.guard.reset()
        if not isinstance(exc, TrackingLost):  # else its run stays RUNNING: the chief requeues it once silent
            with hooks.guard.hold(drop=True):
                recorder.abort("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", lost=True)
        raise
    recorder.save()
    if verdict_jobs is not None:
        from lstm_models.search.calls import leave_chief
        from lstm_models.search.finish import Sweep
        from lstm_models.search.verdict import help_verdict

        leave_chief(tuner.oracle)
        sweep = Sweep(spec, task, inputs, hypermodel.batches, tracker, hooks.log, recorder.dataset or {}, hypermodel,
                      guard=hooks.guard)
        hooks.log(f"{help_verdict(sweep, verdict_jobs, wid)} seed run(s) of the verdict trained")
    return len(recorder.trials)
