"""The chief's watched oracle (lstm_models.search.oracle) and its gRPC service: silent trials, requeues, the cap, restarts, heartbeats."""

import copy
import json
import os
import threading
import time

import keras_tuner as kt
import pytest

from lstm_models.search import oracle as chief_oracle, service
from lstm_models.search.calls import Heartbeat
from lstm_models.search.pruning import taken
from lstm_models.search.oracle import GIVEN_UP, MAX_LOSSES, Watched, adopt_unended, reopen

RUNNING = kt.engine.trial.TrialStatus.RUNNING
IDLE = kt.engine.trial.TrialStatus.IDLE
STOPPED = kt.engine.trial.TrialStatus.STOPPED
COMPLETED = kt.engine.trial.TrialStatus.COMPLETED
FAILED = kt.engine.trial.TrialStatus.FAILED

# As lstm_models.search.tuner.make_tuner builds the chief's oracle class.
ChiefOracle = type("SweepRandomSearchOracle", (Watched, kt.oracles.RandomSearchOracle), {"trial_cap": 3})


class Clock:
    """Stands in for the `time` module in lstm_models.search.oracle: a monotonic clock the test sets."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(chief_oracle, "time", fake)
    return fake


def open_oracle(folder, max_trials=3, trial_cap=None):
    """A chief's oracle on ``folder/tuner``, set up as BaseTuner sets up its oracle."""
    oracle = ChiefOracle(objective=kt.Objective("val_loss", "min"), max_trials=max_trials, seed=1,
                         max_retries_per_trial=0, max_consecutive_failed_trials=None)
    if trial_cap is not None:
        oracle.trial_cap = trial_cap
    oracle.verbose = 0  # no trial tables on stdout
    oracle._set_project_dir(str(folder), "tuner")
    hp = kt.HyperParameters()
    hp.Int("units", 1, 1000)  # a big space: no two trials are duplicates
    oracle.update_space(hp)
    return oracle


def complete(oracle, trial):
    """A worker's end of a trial: one epoch reported, then its own copy (as through gRPC) ended COMPLETED."""
    oracle.update_trial(trial.trial_id, {"val_loss": 1.0}, step=0)
    sent = copy.deepcopy(trial)
    sent.status = COMPLETED
    oracle.end_trial(sent)


def saved_state(folder):
    with open(os.path.join(folder, "tuner", "oracle.json"), encoding="utf-8") as f:
        return json.load(f)


# --- silence ---

def test_silent_lists_only_running_trials_not_heard_of_for_longer_than_the_timeout(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    first = oracle.create_trial("w1")
    clock.now = 105.0
    second = oracle.create_trial("w2")
    assert (first.trial_id, second.trial_id) == ("0", "1")

    clock.now = 110.0
    assert oracle.silent(10) == []  # w1's trial: exactly 10 s, not longer
    clock.now = 112.0
    assert oracle.silent(10) == [("w1", "0")]
    assert oracle.silent(6) == [("w1", "0"), ("w2", "1")]


def test_a_heartbeat_or_an_epoch_report_makes_a_trial_heard_of_again(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    oracle.create_trial("w1")
    oracle.create_trial("w2")

    clock.now = 120.0
    assert oracle.silent(10) == [("w1", "0"), ("w2", "1")]
    assert oracle.get_trial("0").trial_id == "0"  # w1's heartbeat
    assert oracle.silent(10) == [("w2", "1")]
    oracle.update_trial("1", {"val_loss": 2.0}, step=0)  # w2 reports an epoch
    assert oracle.silent(10) == []
    clock.now = 130.5
    assert oracle.silent(10) == [("w1", "0"), ("w2", "1")]


def test_an_ended_trial_is_never_silent(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    complete(oracle, oracle.create_trial("w1"))
    oracle.create_trial("w2")
    clock.now = 1000.0
    assert oracle.silent(10) == [("w2", "1")]


# --- requeue ---

def test_a_requeued_trial_goes_to_the_next_worker_with_the_same_id_and_values(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    lost = oracle.create_trial("w1")
    values = dict(lost.hyperparameters.values)
    assert set(values) == {"units"}

    assert oracle.drop_worker("w1") == "0"
    assert "w1" not in oracle.ongoing_trials and "w1" not in oracle.tuner_ids
    assert oracle._retry_queue == ["0"]
    assert saved_state(tmp_path)["retry_queue"] == ["0"]  # saved at once
    assert saved_state(tmp_path)["ongoing_trials"] == {}

    clock.now = 200.0
    again = oracle.create_trial("w2")
    assert (again.trial_id, again.status) == ("0", RUNNING)
    assert again.hyperparameters.values == values
    assert oracle.ongoing_trials == {"w2": oracle.trials["0"]}
    assert list(oracle.trials) == ["0"] and oracle._retry_queue == []
    assert oracle.silent(10) == []  # heard of from its new worker's start
    clock.now = 211.0
    assert oracle.silent(10) == [("w2", "0")]


def test_requeueing_a_worker_with_no_trial_returns_none(tmp_path, clock):
    oracle = open_oracle(tmp_path, trial_cap=1)
    oracle.create_trial("w1")
    assert oracle.create_trial("w2").status == IDLE  # w2 waits, with no trial
    assert "w2" in oracle.tuner_ids

    assert oracle.drop_worker("w2") is None
    assert oracle.drop_worker("nobody") is None
    assert "w2" not in oracle.tuner_ids
    assert oracle._retry_queue == [] and list(oracle.ongoing_trials) == ["w1"]


def test_the_trial_a_worker_is_given_up_in_max_losses_times_fails_and_is_not_queued(tmp_path, clock):
    oracle = open_oracle(tmp_path, max_trials=5)
    for n, worker in enumerate(f"w{i}" for i in range(1, MAX_LOSSES + 1)):
        trial = oracle.create_trial(worker)
        assert trial.trial_id == "0" and oracle.losses == ({"0": n} if n else {})
        assert oracle.drop_worker(worker) == "0"
    assert oracle.losses == {"0": MAX_LOSSES}
    assert (oracle.trials["0"].status, oracle.trials["0"].message) == (FAILED, GIVEN_UP)
    assert oracle._retry_queue == [] and oracle.ongoing_trials == {}
    assert oracle.create_trial("w9").trial_id == "1"  # a new trial, not the failed one again


def test_the_loss_counts_against_the_trial_the_worker_holds_when_dropped(tmp_path, clock):
    """A worker that ended one trial and took the next before the chief gave up on it: the trial
    counted is the trial queued again, the one it holds when `drop_worker` takes the lock (the
    race itself, the chief reading one and queuing the other, is closed by that lock); the ended
    one stays COMPLETED."""
    oracle = open_oracle(tmp_path)
    first = oracle.create_trial("w1")
    complete(oracle, first)
    second = oracle.create_trial("w1")
    assert oracle.drop_worker("w1") == second.trial_id
    assert oracle.losses == {second.trial_id: 1} and oracle._retry_queue == [second.trial_id]
    assert oracle.trials[first.trial_id].status == COMPLETED


def test_a_chief_cannot_share_its_port_with_another_grpc_server(tmp_path):
    """gRPC listens with SO_REUSEPORT by default: a second chief would have listened on the same
    port beside the first, and the kernel shared the workers' calls out between the two oracles."""
    from concurrent import futures

    import grpc

    from lstm_models.errors import ConfigError
    from lstm_models.tracking.server import free_port

    port = free_port()
    other = grpc.server(futures.ThreadPoolExecutor(max_workers=1))  # gRPC's defaults, as a chief had
    assert other.add_insecure_port(f"127.0.0.1:{port}") == port
    other.start()
    try:
        with pytest.raises(ConfigError, match=rf"^--chief 127.0.0.1:{port}: cannot listen there "):
            service.serve_oracle(open_oracle(tmp_path), "127.0.0.1", port, done=lambda: True)
    finally:
        other.stop(grace=None)
    served = []
    service.serve_oracle(open_oracle(tmp_path), "127.0.0.1", port, done=lambda: served.append(port) or True)
    assert served == [port]  # free again: it listens


# --- the cap and the deadline ---

def test_at_the_cap_a_worker_waits_while_a_trial_runs_then_is_stopped(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    trials = [oracle.create_trial(w) for w in ("w1", "w2", "w3")]
    assert [t.trial_id for t in trials] == ["0", "1", "2"] and oracle.exhausted()
    complete(oracle, trials[0])

    waiting = oracle.create_trial("w1")  # trials 1 and 2 still run: one may be lost and need w1
    assert (waiting.trial_id, waiting.status) == ("3", IDLE)
    assert list(oracle.trials) == ["0", "1", "2"] and "w1" not in oracle.ongoing_trials
    assert "w1" in oracle.tuner_ids

    complete(oracle, trials[1])
    assert oracle.create_trial("w1").status == IDLE  # trial 2 still runs
    complete(oracle, trials[2])
    stopped = oracle.create_trial("w1")
    assert stopped.status == STOPPED
    assert list(oracle.trials) == ["0", "1", "2"]
    assert oracle.tuner_ids == {"w2", "w3"}


def test_at_the_cap_a_waiting_worker_gets_a_requeued_trial(tmp_path, clock):
    oracle = open_oracle(tmp_path, trial_cap=2)
    oracle.create_trial("w1")
    second = oracle.create_trial("w2")
    assert oracle.create_trial("w3").status == IDLE
    assert oracle.drop_worker("w2") == "1"
    again = oracle.create_trial("w3")
    assert (again.trial_id, again.status) == ("1", RUNNING)
    assert again.hyperparameters.values == second.hyperparameters.values


def test_the_cap_is_the_oracles_own_below_max_trials(tmp_path, clock):
    oracle = open_oracle(tmp_path, max_trials=10, trial_cap=2)
    first, second = oracle.create_trial("w1"), oracle.create_trial("w2")
    assert (first.trial_id, second.trial_id) == ("00", "01")
    assert oracle.exhausted()
    complete(oracle, first)
    complete(oracle, second)
    assert oracle.create_trial("w1").status == STOPPED
    assert len(oracle.trials) == 2 and oracle.tuner_ids == {"w2"}


def test_exhausted_once_the_cap_is_reached(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    seen = []
    for worker in ("w1", "w2", "w3"):
        seen.append(oracle.exhausted())
        oracle.create_trial(worker)
    seen.append(oracle.exhausted())
    assert seen == [False, False, False, True]


def test_exhausted_once_the_deadline_has_passed_and_no_new_trial_is_handed_out(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    oracle.deadline = 150.0
    clock.now = 149.9
    assert not oracle.exhausted()
    clock.now = 150.0
    assert oracle.exhausted()

    stopped = oracle.create_trial("w1")
    assert stopped.status == STOPPED
    assert oracle.trials == {} and oracle.ongoing_trials == {} and oracle.tuner_ids == set()


def test_after_the_deadline_a_worker_waits_while_a_trial_runs(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    oracle.deadline = 150.0
    running = oracle.create_trial("w1")
    clock.now = 151.0
    assert oracle.create_trial("w2").status == IDLE
    complete(oracle, running)
    assert oracle.create_trial("w2").status == STOPPED
    assert list(oracle.trials) == ["0"]


def test_no_cap_and_no_deadline_is_never_exhausted(tmp_path, clock):
    oracle = open_oracle(tmp_path, max_trials=5)
    oracle.trial_cap = None
    for worker in ("w1", "w2", "w3", "w4"):
        oracle.create_trial(worker)
    clock.now = 1e9
    assert not oracle.exhausted()


# --- a late end from a worker given up ---

def test_a_late_end_of_a_requeued_trial_is_ignored_and_the_next_worker_runs_it(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    lost = oracle.create_trial("w1")
    values = dict(lost.hyperparameters.values)
    assert oracle.drop_worker("w1") == "0"

    late = copy.deepcopy(lost)  # w1 was only slow: it ends its trial after all
    late.status = COMPLETED
    assert oracle.end_trial(late) is None

    kept = oracle.trials["0"]
    assert kept.status == RUNNING and kept.score is None
    assert oracle._retry_queue == ["0"] and oracle.end_order == []
    assert saved_state(tmp_path)["retry_queue"] == ["0"]

    again = oracle.create_trial("w2")
    assert (again.trial_id, again.status) == ("0", RUNNING)
    assert again.hyperparameters.values == values
    complete(oracle, again)
    assert oracle.trials["0"].status == COMPLETED and oracle.trials["0"].score == 1.0
    assert oracle.end_order == ["0"] and oracle.ongoing_trials == {}


# --- live workers ---

def test_live_workers_are_those_running_a_trial_or_heard_of_within_the_timeout(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    clock.now = 0.0
    trials = [oracle.create_trial(w) for w in ("w1", "w2", "w3")]
    complete(oracle, trials[1])  # w2 has no trial now

    clock.now = 5.0
    assert oracle.live_workers(10) == {"w1", "w2", "w3"}
    clock.now = 20.0
    assert oracle.live_workers(10) == {"w1", "w3"}  # running, though not heard of lately
    assert oracle.create_trial("w2").status == IDLE
    assert oracle.live_workers(10) == {"w1", "w2", "w3"}

    complete(oracle, trials[0])  # ending its trial is news of its worker too
    complete(oracle, trials[2])
    assert oracle.live_workers(10) == {"w1", "w2", "w3"}
    assert oracle.create_trial("w2").status == STOPPED
    assert oracle.live_workers(10) == {"w1", "w3"}  # w2 was told to stop: heard of just now, yet not live
    clock.now = 31.0
    assert oracle.live_workers(10) == set()  # w1 and w3 never asked again: gone
    assert oracle.finished(10)


def test_a_requeued_worker_is_not_live(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    oracle.create_trial("w1")
    oracle.create_trial("w2")
    oracle.drop_worker("w1")
    assert oracle.live_workers(10) == {"w2"}


# --- a restarted chief ---

def test_a_restarted_chief_adopts_the_trials_still_running_and_requeues_the_others(tmp_path, clock):
    before = open_oracle(tmp_path)
    kept, closed = before.create_trial("w1"), before.create_trial("w2")
    assert (kept.trial_id, closed.trial_id) == ("0", "1")
    for trial in (kept, closed):
        before.update_trial(trial.trial_id, {"val_loss": 0.5}, step=0)  # saved with each epoch

    clock.now = 500.0
    oracle = open_oracle(tmp_path)  # the chief restarts on the same project
    oracle.reload()
    assert sorted(oracle._retry_queue) == ["0", "1"] and oracle.ongoing_trials == {}
    assert oracle.trials["1"].metrics.get_history("val_loss")  # Keras Tuner queues it with its epochs

    assert adopt_unended(oracle, {"0"}) == {"0"}
    assert oracle.ongoing_trials == {"w1": oracle.trials["0"]}
    assert oracle.trials["0"].metrics.get_best_value("val_loss") == 0.5  # w1 trains on: its epochs stay
    assert not oracle.trials["1"].metrics.exists("val_loss")  # runs again from scratch: a lost attempt forgotten
    assert oracle._retry_queue == ["1"]
    assert oracle.tuner_ids == {"w1"}
    assert saved_state(tmp_path)["ongoing_trials"] == {"w1": "0"}
    assert saved_state(tmp_path)["retry_queue"] == ["1"]

    # w1 reconnects and keeps its trial; heard of from the restart on.
    assert oracle.create_trial("w1").trial_id == "0"
    assert oracle.live_workers(10) == {"w1"}
    clock.now = 510.0
    assert oracle.silent(10) == []
    clock.now = 510.5
    assert oracle.silent(10) == [("w1", "0")]

    again = oracle.create_trial("w3")  # w2 closed its run: its trial runs again first
    assert (again.trial_id, again.status) == ("1", RUNNING)
    assert again.hyperparameters.values == closed.hyperparameters.values
    assert oracle._retry_queue == []
    assert oracle.create_trial("w4").trial_id == "2"  # then new trials


def test_a_restarted_chief_never_runs_again_the_trial_a_worker_ended_just_before_the_stop(tmp_path, clock):
    """Fresh-clone CI: trial 4 ran twice to the end after a resume. Keras Tuner saves the oracle in
    end_trial before it takes the trial off ongoing_trials; nothing saved it again before the chief stopped."""
    before = open_oracle(tmp_path)
    running, ended = before.create_trial("w1"), before.create_trial("w2")
    complete(before, ended)
    assert saved_state(tmp_path)["ongoing_trials"] == {"w1": "0", "w2": "1"}  # the last save the stopped chief made

    oracle = open_oracle(tmp_path)
    oracle.reload()
    assert sorted(oracle._retry_queue) == ["0", "1"]  # Keras Tuner's reload would run both again
    # Its run is FINISHED, not RUNNING; even a run its worker had not closed yet is not adopted.
    assert adopt_unended(oracle, {"1"}) == set()
    assert oracle._retry_queue == ["0"] and oracle.ongoing_trials == {}
    assert saved_state(tmp_path)["retry_queue"] == ["0"]
    assert [oracle.create_trial(w).trial_id for w in ("w3", "w4")] == ["0", "2"]
    assert oracle.trials["1"].status == COMPLETED and oracle.end_order == ["1"]


def test_a_restarted_chief_runs_again_a_completed_trial_whose_dead_worker_never_recorded_it(tmp_path, clock):
    """w2's end reached the chief, then w2 died before its run had the trial's record and checkpoint,
    and the chief stopped too: the resumed chief closed that run as lost (`still_with_workers`
    names the trial unrecorded), and the oracle's COMPLETED trial runs again, once, from scratch."""
    before = open_oracle(tmp_path)
    running, ended = before.create_trial("w1"), before.create_trial("w2")
    complete(before, ended)

    oracle = open_oracle(tmp_path)
    oracle.reload()
    assert adopt_unended(oracle, set(), unrecorded={"1", "0"}) == set()  # "0" was still running: queued anyway
    assert sorted(oracle._retry_queue) == ["0", "1"] and oracle.end_order == []
    assert oracle.trials["1"].status == RUNNING and oracle.trials["1"].score is None
    assert not oracle.trials["1"].metrics.exists("val_loss") and oracle.losses == {"1": 1}
    assert sorted(saved_state(tmp_path)["retry_queue"]) == ["0", "1"]
    assert sorted(oracle.create_trial(w).trial_id for w in ("w3", "w4")) == ["0", "1"]
    assert oracle.create_trial("w5").trial_id == "2"


def test_a_restarted_chief_awaits_the_record_of_a_completed_trial_whose_run_is_still_open(tmp_path, clock):
    """w2 ended trial 1 and its run is still RUNNING, without its record, when the chief restarts:
    w2 (on another host, say) may be writing it, or may have died. The resumed chief awaits the
    record from w2, answers w2 about the trial as its own, and gives w2 up after the timeout."""
    before = open_oracle(tmp_path)
    before.create_trial("w1")
    complete(before, before.create_trial("w2"))
    clock.now = 50.0
    oracle = open_oracle(tmp_path)
    oracle.reload()
    assert adopt_unended(oracle, {"0"}, recording={"0": "w1", "1": "w2"}) == {"0"}
    assert oracle.awaiting == {"1": "w2"} and oracle._retry_queue == []  # "0" still runs: no record awaited
    assert oracle.signed_get("w2", "1").status == COMPLETED  # not TAKEN: w2 records it
    assert not oracle.finished(10)
    clock.now = 60.5
    assert oracle.silent(10) == [("w1", "0"), ("w2", "1")]


def test_a_restarted_chief_adopts_nothing_when_no_run_is_still_running(tmp_path, clock):
    before = open_oracle(tmp_path)
    before.create_trial("w1")
    oracle = open_oracle(tmp_path)
    oracle.reload()
    assert adopt_unended(oracle, {"7"}) == set()
    assert oracle.ongoing_trials == {} and oracle._retry_queue == ["0"]


# --- heartbeat ---

class FakeChief:
    """Stands in for the gRPC client of the chief's oracle: records each get_trial, may fail the first ones."""

    def __init__(self, failures: int = 0, wanted: int = 3):
        self.calls, self.failures, self.wanted = [], failures, wanted
        self.enough = threading.Event()

    def get_trial(self, trial_id):
        self.calls.append(trial_id)
        if len(self.calls) >= self.wanted:
            self.enough.set()
        if len(self.calls) <= self.failures:
            raise ConnectionError("the chief is restarting")
        return trial_id


def test_a_heartbeat_asks_for_its_trial_until_stopped():
    chief = FakeChief(wanted=3)
    beat = Heartbeat(chief, "4", every=0.05)
    try:
        assert chief.enough.wait(2.0)
    finally:
        beat.stop()
    time.sleep(0.07)  # a beat under way when stop() came has ended by now
    count = len(chief.calls)
    assert count >= 3 and set(chief.calls) == {"4"}
    time.sleep(0.12)
    assert len(chief.calls) == count


def test_a_heartbeat_keeps_beating_after_the_chief_fails_to_answer():
    chief = FakeChief(failures=2, wanted=3)
    beat = Heartbeat(chief, "1", every=0.05)
    try:
        assert chief.enough.wait(2.0)  # a third call after two that raised
    finally:
        beat.stop()
    assert chief.calls[:3] == ["1", "1", "1"]


def test_the_chief_is_not_finished_while_a_requeued_trial_waits_for_a_worker(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    clock.now = 0.0
    oracle.create_trial("w1")
    oracle.drop_worker("w1")
    clock.now = 100.0
    assert not oracle.ongoing_trials and oracle.live_workers(10) == set()
    assert not oracle.finished(10)  # every worker gone, yet a lost trial still has to run
    complete(oracle, oracle.create_trial("w2"))
    clock.now = 200.0
    assert oracle.finished(10)


def test_a_worker_restarted_with_the_same_id_gets_back_its_own_trial_and_no_other(tmp_path, clock):
    oracle = open_oracle(tmp_path)
    clock.now = 0.0
    mine, theirs = oracle.create_trial("w1"), oracle.create_trial("w2")
    oracle.update_trial(mine.trial_id, {"val_loss": 0.5}, step=3)
    again = oracle.create_trial("w1")  # w1 died and came back before its trial was given up
    assert again.trial_id == mine.trial_id and again.hyperparameters.values == mine.hyperparameters.values
    assert not again.metrics.exists("val_loss")  # it trains it again from epoch 0: the dead attempt's epochs go
    assert len(oracle.trials) == 2 and oracle.ongoing_trials["w2"].trial_id == theirs.trial_id
    clock.now = 100.0  # ... or after: its trial went to the queue, and another worker took it
    assert oracle.drop_worker("w1") == mine.trial_id
    assert oracle.create_trial("w3").trial_id == mine.trial_id
    assert oracle.create_trial("w1").trial_id not in (mine.trial_id, theirs.trial_id)  # a new one, not a duplicate



def test_a_worker_given_up_as_dead_changes_nothing_of_its_trial_once_it_went_to_another(tmp_path, clock):
    """Stopped (Ctrl-Z, a laptop's sleep) past worker_timeout, w1 comes back: its epoch is answered
    TAKEN and not recorded, its end does nothing, its heartbeat does not speak for w2, and its look
    at the trial says TAKEN; w2, which runs the trial now, counts."""
    oracle = open_oracle(tmp_path)
    clock.now = 0.0
    mine = oracle.create_trial("w1")
    assert not taken(oracle.signed_update("w1", mine.trial_id, {"val_loss": 0.9}, step=0))
    clock.now = 100.0
    assert oracle.drop_worker("w1") == mine.trial_id
    # Back in the queue, with no other worker on it yet: w1 no longer runs it either
    assert taken(oracle.signed_update("w1", mine.trial_id, {"val_loss": 0.5}, step=1))
    assert oracle.create_trial("w2").trial_id == mine.trial_id
    clock.now = 150.0
    answer = oracle.signed_update("w1", mine.trial_id, {"val_loss": 0.1}, step=1)
    assert taken(answer) and answer.status == FAILED and oracle.trials[mine.trial_id].status == RUNNING
    assert not oracle.trials[mine.trial_id].metrics.exists("val_loss")  # w1's epochs were forgotten with the requeue
    assert taken(oracle.signed_get("w1", mine.trial_id))  # w1's heartbeat, or its look after its end
    clock.now = 170.0
    assert oracle.silent(10) == [("w2", mine.trial_id)]  # w1's beat did not speak for w2
    ended = copy.deepcopy(mine)
    ended.status = COMPLETED
    oracle.signed_end("w1", ended)
    assert oracle.ongoing_trials["w2"].trial_id == mine.trial_id and oracle.trials[mine.trial_id].status == RUNNING

    assert not taken(oracle.signed_update("w2", mine.trial_id, {"val_loss": 0.7}, step=0))
    assert not taken(oracle.signed_get("w2", mine.trial_id))
    assert oracle.silent(10) == []
    oracle.signed_end("w2", ended)
    assert oracle.trials[mine.trial_id].status == COMPLETED and oracle.trials[mine.trial_id].score == 0.7
    assert not oracle.ongoing_trials
    # After the end, the worker that ended it sees the oracle's record; the one given up still does not
    assert oracle.signed_get("w2", mine.trial_id).score == 0.7 and taken(oracle.signed_get("w1", mine.trial_id))


def test_a_worker_given_up_after_its_last_epoch_learns_it_when_it_ends(tmp_path, clock):
    """The window no epoch report covers: w1 reported its last epoch, then was given up (stopped
    while writing its checkpoint). Its end is refused, and its look at the trial says TAKEN, also
    once w2 has finished the trial: w1 must not close its run FINISHED with w2's score."""
    oracle = open_oracle(tmp_path)
    clock.now = 0.0
    mine = oracle.create_trial("w1")
    oracle.signed_update("w1", mine.trial_id, {"val_loss": 0.3}, step=3)
    clock.now = 100.0
    oracle.drop_worker("w1")
    complete(oracle, oracle.create_trial("w2"))
    ended = copy.deepcopy(mine)
    ended.status = COMPLETED
    oracle.signed_end("w1", ended)
    assert oracle.trials[mine.trial_id].score == 1.0  # w2's, as `complete` reported it
    assert taken(oracle.signed_get("w1", mine.trial_id))


def _signed_complete(oracle, worker, trial, loss=0.4):
    oracle.signed_update(worker, trial.trial_id, {"val_loss": loss}, step=0)
    ended = copy.deepcopy(trial)
    ended.status = COMPLETED
    oracle.signed_end(worker, ended)


def test_a_trial_ended_but_unrecorded_when_its_worker_died_runs_again(tmp_path, clock):
    """The window after a worker's end reached the chief and before it recorded the trial on its run
    (checkpoint, then record): the trial awaits its record until the chief found it. A worker heard
    of no more in that window (or dead): the COMPLETED trial runs again from scratch, unless the
    record is there. It used to stay COMPLETED, its run closed lost, and the sweep ended a trial short."""
    oracle = open_oracle(tmp_path, max_trials=5)
    clock.now = 0.0
    mine = oracle.create_trial("w1")
    _signed_complete(oracle, "w1", mine)
    assert oracle.trials["0"].status == COMPLETED and oracle.awaiting == {"0": "w1"}
    clock.now = 8.0
    assert oracle.signed_get("w1", "0").score == 0.4  # its heartbeat while it records: heard of
    clock.now = 18.0
    assert oracle.silent(10) == []
    clock.now = 18.5
    assert oracle.silent(10) == [("w1", "0")] and oracle.live_workers(10) == set()
    assert not oracle.finished(10)  # no trial runs and no worker is left, but a record is awaited

    assert reopen(oracle, "0", recorded=False)
    trial = oracle.trials["0"]
    assert (trial.status, trial.score, oracle.losses, oracle.awaiting) == (RUNNING, None, {"0": 1}, {})
    assert not trial.metrics.exists("val_loss") and oracle.end_order == [] and oracle._retry_queue == ["0"]
    assert saved_state(tmp_path)["retry_queue"] == ["0"]
    assert taken(oracle.signed_get("w1", "0"))  # w1, back after all, must not record it now
    assert oracle.silent(10) == []
    again = oracle.create_trial("w2")
    assert (again.trial_id, again.hyperparameters.values) == ("0", mine.hyperparameters.values)
    _signed_complete(oracle, "w2", again, loss=0.6)
    assert (oracle.trials["0"].status, oracle.trials["0"].score) == (COMPLETED, 0.6)
    assert oracle.awaiting == {"0": "w2"} and oracle.moved_on == set()
    assert oracle.create_trial("w2").trial_id == "1"
    assert oracle.moved_on == {"0"}  # w2 asked again: its record should be in, the chief looks (and pops it)
    assert oracle.silent(10) == [] and not reopen(oracle, "0", recorded=True)
    assert oracle.trials["0"].status == COMPLETED and oracle.awaiting == {} and oracle.moved_on == set()


def test_a_trial_that_failed_is_not_run_again_when_its_record_is_missing(tmp_path, clock):
    oracle = open_oracle(tmp_path, max_trials=5)
    trial = oracle.create_trial("w2")
    failed = copy.deepcopy(trial)
    failed.status, failed.message = FAILED, "TrialFailed: loss became nan"
    oracle.signed_end("w2", failed)
    assert oracle.awaiting == {"0": "w2"}
    assert not reopen(oracle, "0", recorded=False)
    assert oracle.awaiting == {} and oracle._retry_queue == [] and oracle.losses == {}
    assert oracle.trials["0"].status == FAILED


def test_a_worker_waits_while_a_trial_awaits_its_record_rather_than_stop(tmp_path, clock):
    """The last trial ended, its record not yet found: a worker told to stop now would be gone if
    the trial had to run again; it waits (IDLE) until the record is in, then is stopped. Also when
    the space has no new values (Keras Tuner's STOPPED, not the cap)."""
    oracle = open_oracle(tmp_path, trial_cap=1)
    _signed_complete(oracle, "w1", oracle.create_trial("w1"))
    assert oracle.create_trial("w2").status == IDLE and "w2" in oracle.tuner_ids
    assert oracle.create_trial("w1").status == IDLE  # w1 recorded its trial and asked again: not yet checked
    assert not reopen(oracle, "0", recorded=True)
    assert [oracle.create_trial(w).status for w in ("w1", "w2")] == [STOPPED, STOPPED]
    assert oracle.told_to_stop == {"w1", "w2"}

    full = open_oracle(tmp_path / "full", max_trials=5)
    full.hyperparameters = kt.HyperParameters()
    full.hyperparameters.Choice("units", [8])  # one value: the second trial has none left
    first = full.create_trial("w1")
    assert full.create_trial("w2").status == IDLE  # Keras Tuner said STOPPED, with a trial running
    _signed_complete(full, "w1", first)
    assert not reopen(full, "0", recorded=True)
    assert full.create_trial("w2").status == STOPPED


def test_hyperband_continues_no_trial_while_one_awaits_its_record(tmp_path, clock):
    """A Hyperband trial continues another from its checkpoint: handed out while the parent's record
    (and checkpoint) is not in, on another host it found none; and if the parent's worker died, the
    parent runs again. So a worker waits (IDLE) until every ended trial's record is found."""
    Chief = type("SweepHyperbandOracle", (Watched, kt.oracles.HyperbandOracle), {"trial_cap": 20})
    oracle = Chief(objective=kt.Objective("val_loss", "min"), max_epochs=4, factor=2, hyperband_iterations=0, seed=1,
                   max_retries_per_trial=0, max_consecutive_failed_trials=None)
    oracle.verbose = 0
    oracle._set_project_dir(str(tmp_path), "tuner")
    hp = kt.HyperParameters()
    hp.Int("units", 1, 1000)
    oracle.update_space(hp)
    first = oracle.create_trial("w1")
    _signed_complete(oracle, "w1", first)
    assert oracle.create_trial("w2").status == IDLE
    assert not reopen(oracle, first.trial_id, recorded=True)
    assert oracle.create_trial("w2").status == RUNNING


def test_a_completed_trial_whose_record_is_lost_max_losses_times_fails(tmp_path, clock):
    oracle = open_oracle(tmp_path, max_trials=5)
    for n in range(MAX_LOSSES):
        worker = f"w{n}"
        trial = oracle.create_trial(worker)
        assert trial.trial_id == "0"
        _signed_complete(oracle, worker, trial)
        assert reopen(oracle, "0", recorded=False)
    assert (oracle.trials["0"].status, oracle.trials["0"].message) == (FAILED, GIVEN_UP)
    assert oracle._retry_queue == [] and oracle.end_order == ["0"]
    assert oracle.create_trial("w9").trial_id == "1"


def test_a_caller_that_does_not_sign_is_believed(tmp_path, clock):
    """Keras Tuner's own client sends no worker id: its calls count, as before workers signed them."""
    oracle = open_oracle(tmp_path)
    trial = oracle.create_trial("w1")
    assert oracle.runs_trial(None, trial.trial_id) and not oracle.runs_trial("w2", trial.trial_id)
    assert oracle.signed_update(None, trial.trial_id, {"val_loss": 0.4}, step=0).status == RUNNING
    ended = copy.deepcopy(trial)
    ended.status = COMPLETED
    oracle.signed_end(None, ended)
    assert oracle.trials[trial.trial_id].status == COMPLETED and oracle.trials[trial.trial_id].score == 0.4

# --- a worker waiting on a chief that is gone ---

ASKING = """
import signal, sys
import keras_tuner as kt
from keras_tuner.src.distribute.oracle_client import OracleClient
from lstm_models.interrupt import Deferral
from lstm_models.search import calls
from lstm_models.search.calls import release_calls
from lstm_models.search.service import join_chief

calls.PATIENCE = 2.0  # seconds without an answer before an interrupt may end the call (10 in a sweep)
join_chief("127.0.0.1", sys.argv[1], "w")
guard = Deferral()
signal.signal(signal.SIGINT, lambda signum, frame: guard.interrupt(KeyboardInterrupt()))
client = OracleClient(kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=1))
if sys.argv[2] == "released":
    release_calls(client, guard)
guard.enter()  # as a worker's tuner holds interrupts while it asks for its next trial
print("asking", flush=True)
try:
    client.create_trial("w")
except KeyboardInterrupt:
    print("stopped", flush=True)
    sys.exit(130)
"""


@pytest.mark.slow
def test_ctrl_c_stops_a_worker_asking_a_chief_that_never_answers(tmp_path):
    """A listening socket that never speaks gRPC: Keras Tuner's client waits an hour for it, as for
    a chief that is gone. Released, its call ends on Ctrl-C once unanswered for PATIENCE seconds;
    held as before, it would not."""
    import socket
    import subprocess
    import sys

    from conftest import ROOT

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = str(silent.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = {how: subprocess.Popen([sys.executable, "-c", ASKING, port, how], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for how in ("released", "held")}
    try:
        for proc in procs.values():
            assert proc.stdout.readline() == "asking\n"
        time.sleep(0.5)  # both inside the call, the interrupt before their patience ran out
        for proc in procs.values():
            proc.send_signal(2)
        assert procs["released"].wait(timeout=30) == 130
        assert procs["released"].stdout.read() == "stopped\n"
        time.sleep(2.0)
        assert procs["held"].poll() is None  # the interrupt waits for an answer that never comes
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
        silent.close()
