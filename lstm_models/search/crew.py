"""The verdict's seed runs shared out between a chief and its local workers, through its sweep folder.

A chief's local workers are started with ``--verdict-jobs FILE``: told that the search is over,
they do not exit but wait for that file, and train the verdict's seed runs while the chief scores
on test, exports and draws the views, with their data loaded and their recurrent loops traced.
The file lists the seed runs (none if there is no verdict: the workers exit); a process takes
one by creating its claim file (``O_EXCL``: one taker), and writes its result (test score,
per-example test losses, parameter count, or why the run failed) beside it once the run is
closed. The chief trains what no worker will: every seed run when it has no local workers, the
one a worker died in. One seed run gives the same bits in any of these processes (one
TensorFlow thread or two, the process's first model or not), so the verdict does not depend on
who trained what.

The queue is a folder on the chief's machine: workers on other hosts take no seed runs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from lstm_models.processes import end_processes, process_gone, process_identity
from lstm_models.search.state import write_whole

if TYPE_CHECKING:
    from lstm_models.models.build import ModelSpec

FOLDER = "verdict"
JOBS_FILE = "jobs.json"
EARLIER_FILE = "earlier.json"  # a resumed sweep's jobs as they were before the interruption
CHIEF = "chief"
KEPT = "kept"  # the claimant of a seed run that a resumed sweep keeps from before
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Job:
    """One seed run of the verdict: a configuration (``seeds``: a cell's best; ``matched``: the
    winner's at another cell's matched size) and a seed."""

    index: int
    kind: str
    spec: ModelSpec
    seed: int


@dataclass
class Outcome:
    """A closed seed run: its test score and per-example test losses, or why it failed."""

    run_id: str = ""
    score: float = math.nan
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_params: int = 0
    error: str = ""


class Queue:
    """The jobs file, the claims and the results, in ``<sweep folder>/verdict``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @classmethod
    def emptied(cls, sweep_folder: Path, keep: bool = False) -> "Queue":
        """The sweep's queue, emptied: an earlier run's jobs, claims and results are gone (its seed
        runs were closed), but for ``keep`` (a resumed sweep): its results, and its jobs as
        ``earlier.json``, for `create` to sort. Its jobs file appears with `create`."""
        queue = cls(Path(sweep_folder) / FOLDER)
        if not keep or not queue.folder.is_dir():
            shutil.rmtree(queue.folder, ignore_errors=True)
            return queue
        if queue.file.exists():
            os.replace(queue.file, queue.folder / EARLIER_FILE)
        for path in queue.folder.iterdir():
            if path.suffix != ".npz" and path.name != EARLIER_FILE:
                path.unlink()
        return queue

    @classmethod
    def create(cls, sweep_folder: Path, parent_run_id: str, jobs: list[Job], keep: bool = False) -> "Queue":
        """A new queue of ``jobs`` (none: the waiting workers exit). With ``keep`` (a resumed sweep),
        a job the earlier run of this sweep finished, as planned now, keeps its result (`kept`)."""
        queue = cls.emptied(sweep_folder, keep)
        queue.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"parent_run_id": parent_run_id,
                           "jobs": [{"index": j.index, "kind": j.kind, "seed": j.seed, "spec": asdict(j.spec)}
                                    for j in jobs]})
        earlier = queue.folder / EARLIER_FILE
        if earlier.exists():
            queue._keep(json.loads(earlier.read_text(encoding="utf-8")), json.loads(text), jobs)
            earlier.unlink()
        for path in queue.folder.glob("*.npz"):
            if not path.with_suffix(".claim").exists():
                path.unlink()
        write_whole(queue.file, text)
        return queue

    def _keep(self, before: dict, now: dict, jobs: list[Job]) -> None:
        """Claim for `KEPT` each job of the same parent run, planned as before (both read as JSON),
        whose result holds no failure."""
        if before["parent_run_id"] != now["parent_run_id"]:
            return
        planned = {j["index"]: j for j in before["jobs"]}
        for job, same in zip(jobs, now["jobs"]):
            result = self._path(job, "npz")
            if planned.get(job.index) == same and result.exists() and not _failed(result):
                self._path(job, "claim").write_text(KEPT)

    def kept(self, jobs: list[Job]) -> list[Job]:
        """The jobs whose results an earlier run of the sweep left (`create` with ``keep``)."""
        return [job for job in jobs if self.claimant(job) == KEPT]

    @property
    def file(self) -> Path:
        return self.folder / JOBS_FILE

    def read(self) -> tuple[str, list[Job]]:
        """The sweep's parent run and the jobs, as the chief wrote them."""
        from lstm_models.models.build import ModelSpec  # Keras

        raw = json.loads(self.file.read_text(encoding="utf-8"))
        specs = [ModelSpec(**{**j["spec"], "units": tuple(j["spec"]["units"])}) for j in raw["jobs"]]
        return raw["parent_run_id"], [Job(j["index"], j["kind"], s, j["seed"]) for j, s in zip(raw["jobs"], specs)]

    def claim(self, job: Job, who: str) -> bool:
        """Take ``job`` for ``who`` (this process: its identity is written under its name); False if
        another process has it."""
        try:
            fd = os.open(self._path(job, "claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"{who}\n{process_identity(os.getpid())}")
        return True

    def claimant(self, job: Job) -> str | None:
        return self._claim(job)[0]

    def claimant_gone(self, job: Job) -> bool | None:
        """Whether the process that claimed ``job`` has ended (`lstm_models.processes.process_gone`);
        None if its identity is not known (no Linux /proc)."""
        identity = self._claim(job)[1]
        return process_gone(identity) if identity else None

    def _claim(self, job: Job) -> tuple[str | None, str]:
        path = self._path(job, "claim")
        who, _, identity = (path.read_text() if path.exists() else "").partition("\n")
        return who or None, identity

    def put(self, job: Job, outcome: Outcome) -> None:
        path = self._path(job, "npz")
        with open(f"{path}.tmp", "wb") as f:  # np.savez would add a second suffix to a name it does not know
            np.savez(f, losses=outcome.losses, meta=json.dumps({"run_id": outcome.run_id, "score": outcome.score,
                                                                 "n_params": outcome.n_params, "error": outcome.error}))
        os.replace(f"{path}.tmp", path)

    def get(self, job: Job) -> Outcome | None:
        path = self._path(job, "npz")
        if not path.exists():
            return None
        with np.load(path) as saved:
            return Outcome(losses=saved["losses"], **json.loads(str(saved["meta"])))

    def stop(self) -> None:
        """No job is taken after this (a seed run failed: the verdict stops)."""
        (self.folder / "stop").touch()

    def stopped(self) -> bool:
        return (self.folder / "stop").exists()

    def _path(self, job: Job, suffix: str) -> Path:
        return self.folder / f"{job.index:03d}.{suffix}"


class Crew:
    """The chief's side: the local workers handed over by the search, and every job's outcome."""

    def __init__(self, log: Callable[[str], None], procs: dict[str, subprocess.Popen] | None = None):
        self.log, self.procs = log, dict(procs or {})
        self.queue: Queue | None = None
        self.jobs: list[Job] = []
        self.started = 0.0  # when the seed runs were posted

    def post(self, queue: Queue, jobs: list[Job]) -> None:
        """The queue is written (`Queue.create`): the workers start on it, or exit if it is empty."""
        self.queue, self.jobs, self.started = queue, jobs, time.perf_counter()
        kept = queue.kept(jobs)
        if kept:
            self.log(f"verdict: {len(kept)} of {len(jobs)} seed runs kept from before the interruption "
                     "(FINISHED in the tracking store)")
        if len(jobs) > len(kept) and self.procs:
            self.log(f"verdict: {len(jobs) - len(kept)} seed runs shared out between the local workers "
                     f"({', '.join(self.procs)})")

    def outcomes(self, train: Callable[[Job], Outcome], lost: Callable[[Job, str, str], None]) -> dict[int, Outcome]:
        """Every job's outcome by index, up to the first failure. The chief trains with ``train``
        (which puts the outcome in the queue) what no worker will: every job without workers, and a
        job whose worker died in it, after ``lost(job, worker, why)`` closed that worker's run."""
        done: dict[int, Outcome] = {}
        dropped: set[int] = set()  # not needed: the verdict stopped at a failed run before they began
        told = False
        while pending := [j for j in self.jobs if j.index not in done and j.index not in dropped]:
            trained = False
            for job in pending:
                outcome, who = self.queue.get(job), self.queue.claimant(job)
                if outcome is None and who not in (None, CHIEF) and self._gone(job, who):
                    outcome = self.queue.get(job)  # written just before its process ended?
                    if outcome is None:
                        lost(job, who, f"{who} died ({self._exit(who)})")
                        who = CHIEF  # its claim stays: no worker takes the job now
                        if not self.queue.stopped():
                            outcome, trained = train(job), True
                elif outcome is None and who is None and not self.queue.stopped() and not self._alive():
                    if self.procs and not told:
                        told = True
                        self.log(f"chief: its workers have exited ({self._codes()}); it trains the verdict's "
                                 "seed runs they left")
                    if self.queue.claim(job, CHIEF):
                        outcome, trained = train(job), True
                if outcome is not None:
                    done[job.index] = outcome
                    if outcome.error:
                        self.queue.stop()
                elif self.queue.stopped() and (who is None or who == CHIEF):
                    dropped.add(job.index)
            if not trained:
                time.sleep(POLL_SECONDS)
        return done

    def close(self, wait: bool) -> None:
        """End the workers: ``wait`` for them to find no seed run left and exit (60 s at most), or
        stop them at once (the chief was interrupted, or failed)."""
        for proc in self.procs.values() if wait else ():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                break
        end_processes(self.procs.values())

    def _codes(self) -> str:
        return ", ".join(f"{who} exit code {p.returncode}" for who, p in self.procs.items())

    def _alive(self) -> bool:
        return any(p.poll() is None for p in self.procs.values())

    def _gone(self, job: Job, who: str) -> bool:
        """Whether the process that claimed ``job`` has ended: one of the chief's workers, or one an
        earlier chief of a resumed sweep started (it may have the name of one of the chief's own).
        Its claim names the process; without /proc only the chief's own workers are known."""
        gone = self.queue.claimant_gone(job)
        return gone if gone is not None else who not in self.procs or self.procs[who].poll() is not None

    def _exit(self, who: str) -> str:
        proc = self.procs.get(who)
        code = None if proc is None else proc.poll()  # its claim may say it ended before it is reaped
        return "a worker of the chief before the resume" if code is None else f"exit code {code}"


def _failed(path: Path) -> bool:
    """Whether a result file holds a failure (a resumed sweep trains that seed run again)."""
    try:
        with np.load(path) as saved:
            return bool(json.loads(str(saved["meta"]))["error"])
    except (OSError, ValueError, KeyError):
        return True
