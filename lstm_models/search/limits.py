"""When a search stops: its trial limit, its time budget, and failures in a row."""

from __future__ import annotations

from typing import Callable

from lstm_models.errors import SearchDone, SweepFailed
from lstm_models.search.recorder import TrialRecorder
from lstm_models.spec.rules import format_duration

MAX_FAILURES_IN_A_ROW = 3


class Limits:
    """Checked by the tuner adapter before each new trial and after each trial.

    Args:
        name: the sweep's name, for messages.
        max_trials: trials in all, those kept from before a resume included.
        time_budget: seconds after which no new trial starts (None: no budget).
        clock: seconds (``time.monotonic``; tests pass their own).
        log: where the time budget's line goes.
        worker: a worker's id (its chief caps the trials and keeps the time budget; it stops on
            its own after failures in a row only, and then alone).
    """

    def __init__(self, name: str, max_trials: int, time_budget: float | None, clock: Callable[[], float],
                 log: Callable[[str], None], worker: str = ""):
        self.name, self.max_trials, self.time_budget, self.clock, self.log = name, max_trials, time_budget, clock, log
        self.worker = worker
        self.started = clock()
        self.stop_reason = ""

    def before_trial(self, recorder: TrialRecorder) -> None:
        """Raise `SearchDone` once ``max_trials`` have run or the time budget is spent."""
        count = recorder.counted()
        if count >= self.max_trials:
            raise SearchDone()
        spent = self.clock() - self.started
        if self.time_budget is not None and spent >= self.time_budget:
            self.stop_reason = (f"time budget {format_duration(self.time_budget)} spent ({spent:.0f}s) after "
                                f"{count} of {self.max_trials} trials")
            self.log(f"{self.stop_reason}: no new trial; the best model so far is exported")
            raise SearchDone()

    def after_trial(self, recorder: TrialRecorder) -> None:
        """Raise `SweepFailed` after `MAX_FAILURES_IN_A_ROW` failed trials in a row."""
        if recorder.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            kept = sum(t.status == "FINISHED" for t in recorder.trials)
            who, then = f"sweep {self.name}", "fix the cause and resume"
            if self.worker:  # it leaves alone: its chief goes on with the other workers
                who, then = f"worker {self.worker} of sweep {self.name}", "fix the cause and start this worker again"
            raise SweepFailed(
                f"{who}: stopped after {recorder.failures_in_a_row} failed trials in a row; last error: "
                f"{recorder.trials[-1].error}. The {kept} finished trial(s) are kept; {then}")
