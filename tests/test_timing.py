"""Where a sweep's time goes: the epoch clock's split and the summary line (the phases a real sweep
logs to MLflow are checked in tests/test_sweep.py)."""

import pytest

from lstm_models.search.timing import EpochClock, Phases, metric, outside_epochs, summary, trial_totals


class _Ticks:
    """A fake clock moved by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _epoch(clock: EpochClock, ticks: _Ticks, train: list[float], val: list[float] | None, epoch: int = 0) -> None:
    """One epoch through the callbacks, as Keras's fit calls them, each batch taking its seconds
    (``val`` None: an epoch without validation)."""
    clock.on_epoch_begin(epoch)
    for i, s in enumerate(train):
        ticks.now += s
        clock.on_train_batch_end(i)
    if val is not None:
        clock.on_test_begin()
        for i, s in enumerate(val):
            ticks.now += s
            clock.on_test_batch_end(i)
        clock.on_test_end()
    clock.on_epoch_end(epoch)


def test_the_epoch_clock_takes_the_first_epochs_trace_out_of_training_and_validation():
    ticks = _Ticks()
    phases = Phases(rest="tuner", clock=ticks)
    clock = EpochClock(phases)
    _epoch(clock, ticks, [5.0, 1.0, 1.0, 1.0], [2.0, 0.5, 0.5])  # first batches 4 s and 1.5 s over their mean
    assert phases.seconds == {"trace": 5.5, "train": 4.0, "validate": 1.5}
    assert clock.ended == 11.0
    _epoch(clock, ticks, [3.0, 1.0], [0.5, 0.5], epoch=1)  # a later epoch has no trace, however slow its first batch
    assert phases.seconds == {"trace": 5.5, "train": 8.0, "validate": 2.5}
    ticks.now += 2.0  # after the epochs: the rest goes to the tuner
    assert phases.metrics() == {metric("trace"): 5.5, metric("train"): 8.0, metric("validate"): 2.5,
                                metric("tuner"): 2.0}


def test_an_epoch_of_one_batch_has_no_trace_estimate_and_never_gives_a_later_one():
    ticks = _Ticks()
    phases = Phases(clock=ticks)
    clock = EpochClock(phases)
    _epoch(clock, ticks, [4.0], None)
    _epoch(clock, ticks, [3.0, 1.0], None, epoch=1)
    assert phases.seconds == {"trace": 0.0, "train": 8.0}


def test_the_summary_gives_the_sweeps_seconds_and_the_trials_shares():
    sweep = {metric("data"): 1.2, metric("inputs"): 0.4, metric("search"): 100.0, metric("test"): 5.0,
             metric("views"): 30.0}
    trials = [{metric("build"): 2, metric("trace"): 6, metric("train"): 30, metric("validate"): 10,
               metric("checkpoint"): 1, metric("tracking"): 1, metric("tuner"): 0},
              {metric("build"): 2, metric("trace"): 6, metric("train"): 30, metric("validate"): 10,
               metric("checkpoint"): 1, metric("tracking"): 1, metric("tuner"): 0}]
    assert outside_epochs(trial_totals(trials)) == pytest.approx(0.2)
    assert summary(sweep, trials) == (
        "Time: data 1s, inputs 0s, search 100s (2 trials: build 4%, trace 12%, train 60%, validate 20%, "
        "checkpoint 2%, tracking 2%, tuner 0%; 20% outside their epochs), test 5s, views 30s")
    assert outside_epochs(trial_totals([])) is None and summary({}, []) == "Time: "

