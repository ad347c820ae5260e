"""The chief of a sweep with workers: Keras Tuner's oracle served over gRPC, the workers' trials gathered.

The chief serves the oracle (``--chief HOST:PORT``, or 127.0.0.1 and a free port for
``--workers N``) and may start N worker processes itself (`lstm_models.search.worker` is the
other side). Nothing travels through a shared folder: each trial is a nested run of the
sweep's parent run, carrying its record (`RECORD_TAG`) and its best checkpoint; the chief
gathers the records from the tracking store and loads the checkpoints it has not got from there.

No trial is lost: a trial not heard of for ``worker_timeout`` (`lstm_models.search.oracle`), or
whose local worker process died, goes back to the queue with the same hyperparameters, and its
run is closed FAILED and tagged ``lost``; so does a trial whose worker died after the trial's
end reached the chief but before it recorded the trial on its run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from lstm_models.errors import SweepFailed
from lstm_models.processes import end_processes
from lstm_models.search.trial_runs import LOST, Found, close_orphan, fail_recorded, gather, holds_record, wait_for_runs
from lstm_models.search.recorder import TrialRecorder, fail_runs
from lstm_models.tracking.server import check_port_free, free_port


@dataclass(frozen=True)
class WorkerPlan:
    """How the chief serves its oracle, and the workers it starts itself.

    Args:
        count: worker processes the chief starts on this machine (0: they join from other hosts).
        argv: the chief's ``lstm-models`` command line (spec and flags), to which each of its
            workers adds ``--worker HOST:PORT --worker-id ID``.
        environ: the environment the workers start from.
        cores: the cores this machine has (shared out between the workers).
        gpus: the GPUs the workers take in turn (``CUDA_VISIBLE_DEVICES``), none on a CPU machine.
        host, port: where the oracle listens (port 0: a free one, or a resumed sweep's).
        jobs: the verdict's queue (`lstm_models.search.crew`): local workers train its seed runs
            once the search is over.
    """

    count: int
    argv: tuple[str, ...] = ()
    environ: dict = field(default_factory=dict)
    cores: int = 1
    gpus: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    jobs: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def bound(self, previous: str = "") -> "WorkerPlan":
        """The plan with its port: given, else the resumed sweep's (workers that outlived their chief
        reconnect there), else a free one. `ConfigError` if it cannot be listened on, naming where
        the port came from: ``--chief``, or (``--resume`` without it) the sweep's saved state."""
        port = self.port or (int(previous.rpartition(":")[2]) if previous else 0) or free_port(self.host)
        resumed = previous.rpartition(":")[2] == str(port)
        check_port_free(self.host, port, "--resume: its chief's port from before," if resumed else "--chief",
                        "; give --chief HOST:PORT (and --workers N) to serve elsewhere" if resumed else "")
        return replace(self, port=port)

    def worker_env(self, index: int) -> dict:
        """The environment of local worker ``index`` (0-based): its threads, its GPU."""
        threads = str(max(1, self.cores // max(1, self.count)))
        env = {**self.environ, "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1",
               "OMP_NUM_THREADS": threads}
        if self.gpus:  # none here: the variable is left as it was
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[index % len(self.gpus)]
        return env

    def command(self, index: int) -> list[str]:
        host = "127.0.0.1" if self.host == "0.0.0.0" else self.host
        jobs = ["--verdict-jobs", str(self.jobs)] if self.jobs else []
        return [sys.executable, "-m", "lstm_models", *self.argv, "--worker", f"{host}:{self.port}",
                "--worker-id", worker_id(index), *jobs]


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


def sweep_tags(plan: WorkerPlan, spec: dict, data: str) -> dict[str, str]:
    """The parent run's tags by which workers find the sweep and check that they run its spec on
    its data (``data``: its fingerprint)."""
    return {"workers": str(plan.count), "oracle_host": plan.host, "oracle_port": str(plan.port),
            "sweep_spec": json.dumps(spec, sort_keys=True), "data_fingerprint": data}


def run_chief(local: LocalWorkers, oracle, recorder: TrialRecorder, model_spec: Callable, timeout: float,
              log: Callable[[str], None]) -> dict[str, subprocess.Popen]:
    """Serve ``oracle`` until every trial has ended and no worker is left; then keep their trials.

    Args:
        local: where to listen (``local.plan``), and the local workers, started.
        oracle: the chief's oracle (`lstm_models.search.oracle.Watched`).
        recorder: the sweep's recorder; the workers' trials are gathered into it.
        model_spec: ``hp -> ModelSpec``. timeout: the sweep's ``worker_timeout``, in seconds.

    Returns:
        The local workers still running, each told that the search is over: with ``plan.jobs``
        they wait for the verdict's seed runs (`lstm_models.search.crew`).
    """
    from lstm_models.search.service import serve_oracle

    plan = local.plan
    threads = f", {max(1, plan.cores // plan.count)} TensorFlow thread(s) each" if plan.count else ""
    log(f"chief: oracle on {plan.address}, {plan.count or 'no'} local workers{threads}; "
        f"a trial unheard of for {timeout:.0f}s goes to another worker")
    supervisor = _Supervisor(local, oracle, recorder, timeout, log)
    serve_oracle(oracle, plan.host, plan.port, done=supervisor.done, stopping=supervisor.stop)
    wait_for_runs(recorder, timeout)
    recorder.trials, recorder.best, recorder.state.trials = [], None, {}
    for result in gather(recorder.tracker, recorder.state.parent_run_id):
        result.spec = model_spec(oracle.trials[result.trial_id].hyperparameters.copy())
        recorder.keep(result)
        recorder.save(result)
    recorder.save()
    return supervisor.handed_over


class LocalWorkers:
    """The worker processes a chief starts on its own machine: started as soon as the chief has
    passed its checks, before it loads TensorFlow, so that each loads its own meanwhile and then
    waits for the oracle to listen (`lstm_models.search.worker.check_chief`). Started once the
    oracle listened, they spent 5 s of a 33 s sweep of 3,000 short sentences loading while the
    chief waited. Leaving the ``with`` block ends those still running.

    A resumed chief's workers take ids its earlier workers still training a trial do not: those
    reconnect (``earlier``: worker -> trial id, `lstm_models.search.state.still_training`).
    ``found``: what it found of its earlier workers' runs (`still_with_workers`)."""

    def __init__(self, plan: WorkerPlan, earlier: dict[str, str] | None = None, found: Found | None = None):
        self.plan, self.earlier, self.found = plan, earlier or {}, found or Found()
        self.procs: dict[str, subprocess.Popen] = {}
        self.last = max((int(m[1]) for m in map(re.compile(r"worker-(\d+)").fullmatch, self.earlier) if m), default=0)

    def __enter__(self) -> "LocalWorkers":
        for _ in range(self.plan.count):
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        end_processes(list(self.procs.values()))

    def start(self) -> None:
        """One more worker (in place of one that died)."""
        index, self.last = self.last, self.last + 1
        self.procs[worker_id(index)] = subprocess.Popen(self.plan.command(index), env=self.plan.worker_env(index))


class _Supervisor:
    """Gives up on dead or silent workers (a dead local one is started again), and says when the
    search is over."""

    def __init__(self, local: LocalWorkers, oracle, recorder: TrialRecorder, timeout: float,
                 log: Callable[[str], None]):
        self.local, self.oracle, self.recorder, self.timeout, self.log = local, oracle, recorder, timeout, log
        self.procs = local.procs
        self.handed_over: dict[str, subprocess.Popen] = {}  # searched, kept for the verdict
        self.exits: list[str] = []  # the local workers that exited between trials, and how

    def _lose(self, wid: str, why: str) -> bool:
        """A dead or silent worker's running trial goes to another worker, or fails the
        `lstm_models.search.oracle.MAX_LOSSES`-th time (`Watched.drop_worker`), and so do its runs;
        so do the trials it ended but did not record (`_check_record`). False: it had none."""
        trial_id = self.oracle.drop_worker(wid)
        if trial_id is not None:
            self._lost(wid, trial_id, f"{why} during trial {int(trial_id) + 1}")
        awaited = [t for t, w in list(self.oracle.awaiting.items()) if w == wid]
        again = [t for t in awaited if self._check_record(t, f"{why} before it recorded trial")]
        return trial_id is not None or bool(again)

    def _lost(self, wid: str, trial_id: str, what: str, runs: list[str] | None = None) -> None:
        """Close ``wid``'s ``runs`` of a trial that runs again or fails (default: those still RUNNING)."""
        from lstm_models.search.oracle import GIVEN_UP, MAX_LOSSES

        tracker, parent = self.recorder.tracker, self.recorder.state.parent_run_id
        # Its runs only: the requeued trial may already be another worker's, its run open.
        runs = tracker.running_trials(parent, {"trial_id": trial_id, "worker": wid}) if runs is None else runs
        if self.oracle.losses[trial_id] < MAX_LOSSES:
            fail_runs(tracker, runs, LOST, {"lost": "true"})
            self.log(f"chief: {wid} {what}; another worker runs it again")
        else:
            fail_recorded(tracker, runs, trial_id, GIVEN_UP)
            self.log(f"chief: {wid} {what}; workers ended in it {MAX_LOSSES} times: it fails, not run again")

    def _check_record(self, trial_id: str, what: str) -> bool:
        """Look for the record of a trial that awaits it (`lstm_models.search.oracle`): its worker
        asked for its next trial, died, or fell silent. Not there, the trial runs again (`reopen`)
        and its runs close as lost; one that failed closes FAILED with the oracle's error. A record
        there, on a run left open, closes it as the worker would have. True: it runs again."""
        from lstm_models.search.oracle import reopen

        wid, tracker = self.oracle.awaiting.get(trial_id), self.recorder.tracker
        if wid is None:  # checked already
            return False
        runs = tracker.trial_runs(self.recorder.state.parent_run_id, tags={"trial_id": trial_id, "worker": wid})
        recorded = any(holds_record(r) for r in runs)
        for run in (r for r in runs if r["status"] == "RUNNING" and holds_record(r)):
            close_orphan(tracker, run)
        if reopen(self.oracle, trial_id, recorded):
            # All of them, though no longer RUNNING: a late record must not count (`gather`)
            unclosed = [r["run_id"] for r in runs if r["tags"].get("lost") != "true"]
            self._lost(wid, trial_id, f"{what} {int(trial_id) + 1}", unclosed)
            return True
        if not recorded:  # it failed: its run says why, as the worker would have
            error = self.oracle.trials[trial_id].message or "the trial failed; its worker died before it said why"
            fail_recorded(tracker, [r["run_id"] for r in runs if r["status"] == "RUNNING"], trial_id, error)
        return False

    def done(self) -> bool:
        """Polled by the oracle's server loop: True once no trial runs and no worker is left.

        Raises `SweepFailed` when every local worker exited before any trial was handed out (a worker
        that cannot start says why in its own lines): the chief would wait for ever."""
        for wid, proc in list(self.procs.items()):
            if proc.poll() is None or proc.returncode == 0:
                continue
            del self.procs[wid]
            if self._lose(wid, f"died (exit code {proc.returncode})"):
                self.local.start()
            else:
                self.log(f"chief: {wid} exited with code {proc.returncode} between trials")
                self.exits.append(f"{wid} exit code {proc.returncode}")
        if self.local.plan.count and not self.oracle.trials and not self.oracle.live_workers(self.timeout) \
                and all(proc.poll() is not None for proc in self.procs.values()):
            raise SweepFailed(f"sweep {self.recorder.state.name}: every local worker exited before the first trial "
                              f"({', '.join(self.exits) or 'exit code 0'}); their lines above say why")
        for wid, _ in self.oracle.silent(self.timeout):
            self._lose(wid, f"was not heard of for {self.timeout:.0f}s")
        for trial_id in list(self.oracle.moved_on):  # asked for its next trial: it recorded this one, or was restarted
            self._check_record(trial_id, "asked for a new trial but never recorded trial")
        told = self.oracle.told_to_stop if self.local.plan.jobs else set()
        local = any(proc.poll() is None and wid not in told for wid, proc in self.procs.items())
        if local or not self.oracle.finished(self.timeout):
            return False
        self.handed_over = {wid: proc for wid, proc in self.procs.items() if proc.poll() is None}
        return True

    def stop(self) -> None:
        """Stop the local workers while the oracle still answers (a worker ending its trial, its
        signal deferred meanwhile, needs the chief for that; one still running after 60 s is
        killed), but those handed over to the verdict."""
        end_processes([proc for wid, proc in self.procs.items() if wid not in self.handed_over])
