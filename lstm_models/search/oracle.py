"""The chief's oracle: when each trial and worker was last heard of, lost and requeued trials.

A third part of the Keras Tuner adapter (with `lstm_models.search.tuner` and
`lstm_models.search.service`, which serves this oracle over gRPC): the modules that use private
Keras Tuner members, each naming the public gap it fills.

Keras Tuner's distributed engine has no heartbeat: a worker that dies leaves its trial
"running" forever. Here a worker asks the chief for its running trial every few seconds
(`lstm_models.search.calls.Heartbeat`); the chief's oracle (`Watched`) notes when it last heard of
each trial and each worker, and a trial silent for ``worker_timeout`` goes back to the queue for
another worker. A worker given up on may come back (stopped, cut off): its calls are signed with
its id, and the ``signed_`` methods record nothing it sends about a trial no longer its own. A
trial run again, after a loss or a restart, runs from scratch: its earlier epochs are forgotten.
A worker's end of a trial counts before the worker records the trial (its checkpoint, then its
run's record: about a second of tracking writes), so an ended trial ``awaits`` its record until
the chief has found it in the tracking store: once the worker asked for its next trial (it
``moved_on``), or when it died or fell silent first. Not found, a completed trial runs again
(`reopen`): its checkpoint is nowhere.
"""

from __future__ import annotations

import copy
import time

import keras_tuner as kt

from lstm_models.search.pruning import COMPLETED, FAILED, STOPPED, TAKEN, forget_metrics
from lstm_models.search.state import still_training

MAX_LOSSES = 3  # a trial whose worker died or fell silent in it this many times fails
GIVEN_UP = f"the worker training this trial died or fell silent in it {MAX_LOSSES} times; not run again"
RUNNING = kt.engine.trial.TrialStatus.RUNNING
IDLE = kt.engine.trial.TrialStatus.IDLE


class Watched:
    """Mixed into the chief's oracle: when each trial and each worker was last heard of.

    A worker is heard of whenever it calls: to ask for a trial, or about its trial (an epoch's
    report, its end, a heartbeat: `Heartbeat` asks for the trial). ``trial_cap`` and
    ``deadline`` (a ``time.monotonic`` value) stop new trials: Hyperband has no cap of its own,
    and with workers the cap and the time budget must be the oracle's, which sees every worker.
    """

    trial_cap: int | None = None
    deadline: float | None = None

    def __init__(self, *args, **kwargs):
        self.trials_heard, self.workers_heard = {}, {}  # trial id, worker -> when (monotonic) last heard of
        self.ended_by: dict[str, str | None] = {}  # trial id -> the worker whose end of it counted
        self.losses: dict[str, int] = {}  # trial id -> how many times its worker was given up in it
        self.told_to_stop: set[str] = set()  # the workers told that the search is over: none calls again
        self.awaiting: dict[str, str] = {}  # trial id -> the worker that ended it, until its record is found
        self.moved_on: set[str] = set()  # those of them whose worker asked for its next trial since
        super().__init__(*args, **kwargs)

    def exhausted(self) -> bool:
        """No new trial will be handed out (the cap or the time budget is reached)."""
        capped = self.trial_cap is not None and len(self.trials) >= self.trial_cap
        return capped or (self.deadline is not None and time.monotonic() >= self.deadline)

    def populate_space(self, trial_id):
        if self.exhausted():
            return {"status": STOPPED, "values": None}
        if self.awaiting and isinstance(self, kt.oracles.HyperbandOracle):  # a trial it continues needs its
            return {"status": IDLE, "values": None}  # parent's checkpoint, recorded: or the parent runs again
        return super().populate_space(trial_id)

    @kt.synchronized
    def create_trial(self, tuner_id):
        trials, workers = self.trials_heard, self.workers_heard
        workers[tuner_id] = time.monotonic()
        self.moved_on |= {t for t, w in list(self.awaiting.items()) if w == tuner_id}  # it recorded them, it says
        if tuner_id in self.ongoing_trials:  # a worker restarted with its id: its trial runs again from scratch
            forget_metrics(self.ongoing_trials[tuner_id])
        trial = super().create_trial(tuner_id)
        if trial.status == RUNNING:
            trials[trial.trial_id] = time.monotonic()
        elif trial.status == STOPPED and (self.ongoing_trials or self.awaiting or self._retry_queue):
            # No new trial, but one running or unrecorded may be lost and need this worker: it waits (IDLE).
            # Private `_retry_queue`: see `drop_worker`.
            self.tuner_ids.add(tuner_id)  # Keras Tuner forgot it, as told to stop
            return kt.engine.trial.Trial(self.hyperparameters.copy(), trial_id=str(len(self.trials)), status=IDLE)
        elif trial.status == STOPPED:
            self.told_to_stop.add(tuner_id)
        return trial

    def _hear(self, trial_id: str) -> None:
        """A call about a trial: it, and the worker running it, are alive."""
        trials, workers = self.trials_heard, self.workers_heard
        trials[trial_id] = time.monotonic()
        for worker, trial in list(self.ongoing_trials.items()):
            if trial.trial_id == trial_id:
                workers[worker] = trials[trial_id]

    def update_trial(self, trial_id, metrics, step=0):
        self._hear(trial_id)
        return super().update_trial(trial_id, metrics, step)

    def get_trial(self, trial_id):
        self._hear(trial_id)
        return super().get_trial(trial_id)

    @kt.synchronized
    def end_trial(self, trial):
        if trial.trial_id not in {t.trial_id for t in self.ongoing_trials.values()}:
            return  # a worker given up as dead ended it after all: its trial went back to the queue
        self._hear(trial.trial_id)
        return super().end_trial(trial)

    def runs_trial(self, worker: str | None, trial_id: str) -> bool:
        """Whether ``worker`` runs trial ``trial_id`` (not one given up as dead); an unsigned caller is believed."""
        trial = self.ongoing_trials.get(worker)
        return worker is None or (trial is not None and trial.trial_id == trial_id)

    def _taken(self, trial_id: str):
        """The answer to a worker about a trial it no longer runs: a copy whose metrics say TAKEN."""
        answer = copy.copy(self.trials[trial_id])
        answer.status, answer.metrics = FAILED, type(answer.metrics)()
        answer.metrics.update(TAKEN, 1.0)
        return answer

    @kt.synchronized
    def signed_update(self, worker: str | None, trial_id: str, metrics, step=0):
        """`update_trial` from ``worker``; from one that no longer runs the trial: nothing, and TAKEN."""
        if self.runs_trial(worker, trial_id):
            return self.update_trial(trial_id, metrics, step)
        return self._taken(trial_id)

    @kt.synchronized
    def signed_end(self, worker: str | None, trial) -> None:
        if self.runs_trial(worker, trial.trial_id):
            self.end_trial(trial)
            self.ended_by[trial.trial_id] = worker
            if worker is not None:
                self.awaiting[trial.trial_id] = worker

    @kt.synchronized
    def signed_get(self, worker: str | None, trial_id: str):
        """`get_trial` from ``worker``; one that neither runs nor ended the trial: not heard of, and TAKEN."""
        if self.runs_trial(worker, trial_id):
            return self.get_trial(trial_id)
        if self.ended_by.get(trial_id) != worker:
            return self._taken(trial_id)
        if self.awaiting.get(trial_id) == worker:  # its heartbeat while it records the trial
            self.workers_heard[worker] = time.monotonic()
        return self.trials[trial_id]

    @kt.synchronized
    def drop_worker(self, worker: str) -> str | None:
        """A worker died or fell silent: its running trial goes back to the queue with the same values,
        or the `MAX_LOSSES`-th time ends FAILED (``GIVEN_UP``: out of memory, a crash it causes). Return
        its id (None: it had none). One step under the lock: the trial counted is the trial queued."""
        # Private `_retry_queue` (Keras Tuner's queue of trials to run again): no public API adds to it.
        self.tuner_ids.discard(worker)
        trial = self.ongoing_trials.get(worker)
        if trial is None:
            return None
        if given_up(self, trial.trial_id):
            trial.status, trial.message = FAILED, GIVEN_UP
            self.end_trial(trial)
            return trial.trial_id
        del self.ongoing_trials[worker]
        forget_metrics(trial)
        self._retry_queue.append(trial.trial_id)
        self.save()
        return trial.trial_id

    def finished(self, timeout: float) -> bool:
        """Every trial handed out has ended and been recorded, none waits to run again, and no worker is left."""
        # Private `_retry_queue`: see `drop_worker`.
        return bool(self.trials) and not self.ongoing_trials and not self.awaiting and not self._retry_queue \
            and not self.live_workers(timeout)

    def silent(self, timeout: float) -> list[tuple[str, str]]:
        """(worker, trial id) of the running trials not heard of for ``timeout`` seconds, and of the
        ended ones awaiting their records from workers not heard of since."""
        trials, workers = self.trials_heard, self.workers_heard
        now = time.monotonic()
        return [(w, t.trial_id) for w, t in list(self.ongoing_trials.items())
                if now - trials.get(t.trial_id, now) > timeout] + \
            [(w, t) for t, w in list(self.awaiting.items())
             if t not in self.moved_on and now - workers.get(w, now) > timeout]

    def live_workers(self, timeout: float) -> set[str]:
        """Workers that may still ask for a trial: running one, or heard of within ``timeout``.

        Keras Tuner forgets a worker once it has been told to stop (``tuner_ids``)."""
        workers = self.workers_heard
        now = time.monotonic()
        return set(self.ongoing_trials) | {w for w in list(self.tuner_ids) if now - workers.get(w, now) <= timeout}


@kt.synchronized
def reopen(oracle, trial_id: str, recorded: bool) -> bool:
    """The chief looked for the record of a trial that ``awaits`` it in its oracle (a `Watched`
    one). Unless it found it ``recorded``, a trial that completed runs again from scratch, or the
    `MAX_LOSSES`-th time fails, as in `drop_worker`: True (a failed one stays failed: False)."""
    oracle.awaiting.pop(trial_id, None)
    oracle.moved_on.discard(trial_id)
    if recorded or oracle.trials[trial_id].status != COMPLETED:
        return False
    del oracle.ended_by[trial_id]  # its worker, back, is told that the trial is no longer its own
    run_again(oracle, trial_id)
    return True


def given_up(oracle, trial_id: str) -> bool:
    """Count one more loss of a trial (its worker died or fell silent in it, or before it recorded
    it): True the `MAX_LOSSES`-th time, when it fails (``GIVEN_UP``) instead of running again."""
    oracle.losses[trial_id] = oracle.losses.get(trial_id, 0) + 1
    return oracle.losses[trial_id] >= MAX_LOSSES


def run_again(oracle, trial_id: str) -> None:
    """A completed trial whose record and checkpoint were lost with its worker: queued again,
    from scratch, unless this is its `MAX_LOSSES`-th loss (then FAILED, ``GIVEN_UP``)."""
    # Private `_retry_queue` and `_save_trial`: Keras Tuner has no way to run an ended trial again.
    trial = oracle.trials[trial_id]
    forget_metrics(trial)
    trial.score = trial.best_step = None
    if given_up(oracle, trial_id):
        trial.status, trial.message = FAILED, GIVEN_UP
    else:
        trial.status = RUNNING
        oracle.end_order[:] = [t for t in oracle.end_order if t != trial_id]
        if trial_id not in oracle._retry_queue:  # a reload queues the trial a chief was ending
            oracle._retry_queue.append(trial_id)
    oracle._save_trial(trial)
    oracle.save()


def requeue_unended(oracle) -> set[str]:
    """Queue again the oracle's trials that a stopped process left running; return their ids.

    Such a trial was lost with its process (a signal, ``kill -9``), not by its own fault: Keras
    Tuner runs it again, with the same hyperparameters and trial id, before any new trial.
    """
    # Private `_retry_queue`: Keras Tuner's queue of trials to run again (its reload queues the
    # ongoing ones); no public API adds to it. Trials that ended are taken off it.
    unended = {t.trial_id for t in oracle.trials.values() if t.status not in (COMPLETED, FAILED)}
    for trial_id in unended:
        forget_metrics(oracle.trials[trial_id])
    oracle._retry_queue = sorted(unended, reverse=True)  # popped from the end: the oldest runs first
    oracle.save()
    return unended


def adopt_unended(oracle, running: set[str], unrecorded: set[str] = frozenset(),
                  recording: dict[str, str] | None = None) -> set[str]:
    """After a chief restarts (``--resume``): the trials of its oracle (a `Watched` one) whose runs
    are still ``running`` stay with their workers, which reconnect; each is heard of from now, so a
    dead worker's trial goes back to the queue after ``worker_timeout``. The others (their workers
    closed their runs) run again first. Return the adopted ids.

    A trial that ended is neither: Keras Tuner's ``end_trial`` saves the oracle before it takes
    the trial off ``ongoing_trials``, so the trial a worker ended last before its chief stopped
    is still "ongoing" in the saved state, and its reload would run it a second time. Unless
    it is ``unrecorded``: it completed, but its worker died before it recorded the trial, and the
    chief closed that run as lost; it runs again. One whose run is still ``recording`` (trial id
    -> worker; `lstm_models.search.trial_runs.still_with_workers`) awaits its record from that worker."""
    # Private `_get_oracle_fname` and `_retry_queue`: Keras Tuner's reload queues every ongoing
    # trial again, which would give a trial a surviving worker still trains to a second one.
    completed = {t for t, trial in oracle.trials.items() if trial.status == COMPLETED}
    for trial_id in sorted(set(unrecorded) & completed):
        run_again(oracle, trial_id)
    for trial_id, worker in (recording or {}).items():
        if trial_id in completed:
            oracle.awaiting[trial_id] = oracle.ended_by[trial_id] = worker
            oracle.workers_heard[worker] = time.monotonic()
    ended = {t.trial_id for t in oracle.trials.values() if t.status in (COMPLETED, FAILED)}
    oracle._retry_queue[:] = [t for t in oracle._retry_queue if t not in ended]
    saved = {w: t for w, t in still_training(oracle._get_oracle_fname(), running).items() if t not in ended}
    trials, workers = oracle.trials_heard, oracle.workers_heard
    for worker, trial_id in saved.items():
        if trial_id in oracle._retry_queue:
            oracle._retry_queue.remove(trial_id)
        oracle.ongoing_trials[worker] = oracle.trials[trial_id]
        oracle.tuner_ids.add(worker)
        trials[trial_id] = workers[worker] = time.monotonic()
    for trial_id in oracle._retry_queue:  # run again from scratch: a lost attempt's epochs must not count
        forget_metrics(oracle.trials[trial_id])
    oracle.save()
    return set(saved.values())
