"""The cell verdict: intervals, paired bootstrap, the sentence, matched sizes, the spec keys, the
queue of seed runs that a chief shares with its local workers.

The statistics run on made-up per-example losses; matched sizes build real Keras models.
The whole verdict inside a CLI sweep is checked in tests/test_serving.py, and trained by local
workers (one of them killed) in tests/test_workers.py.
"""

import numpy as np
import pytest

from lstm_models.errors import ConfigError
from lstm_models.models.build import ModelSpec, SeriesInputs, TextInputs
from lstm_models.search.state import spec_changes
from lstm_models.search.verdict import count_params, matched_spec
from lstm_models.spec.sweep import parse_sweep
from lstm_models.tasks.paired import block_length, bootstrap_p, percentile_interval, seed_bootstrap
from lstm_models.tasks.verdict import CellRuns, compare

from conftest import tiny_series_spec


def _errors(rng, accuracy: float, seeds: int = 3, n: int = 400) -> np.ndarray:
    return (rng.random((seeds, n)) > accuracy).astype("float64")


def _runs(cell: str, losses: np.ndarray, task: str = "classification") -> CellRuns:
    scores = list(1 - losses.mean(axis=1)) if task == "classification" else list(np.sqrt(losses.mean(axis=1)))
    return CellRuns(cell, f"{cell} 1x8", 100, scores, losses)


@pytest.mark.parametrize("task", ["classification", "forecasting"])
def test_each_interval_contains_its_mean(task):
    rng = np.random.default_rng(1)
    if task == "classification":
        runs = [_runs(c, _errors(rng, a)) for c, a in (("lstm", 0.85), ("gru", 0.75), ("rnn", 0.6))]
    else:
        runs = [_runs(c, rng.gamma(2.0, s, size=(3, 60)), task) for c, s in (("lstm", 1.0), ("gru", 1.1), ("rnn", 2.0))]
    table = compare(task, "accuracy" if task == "classification" else "rmse", runs, [1, 2, 3])
    for row in table.rows:
        assert row.low <= row.mean <= row.high
        assert row.mean == pytest.approx(np.mean(row.runs.scores))
    assert [r.runs.cell for r in table.rows] == ["lstm", "gru", "rnn"]  # best first, whichever the direction
    for row in table.rows[1:]:
        assert row.diff_low <= row.diff <= row.diff_high


def test_identical_models_are_level_with_p_one():
    losses = _errors(np.random.default_rng(2), 0.75)
    table = compare("classification", "accuracy", [_runs("lstm", losses), _runs("gru", losses.copy())], [1, 2, 3])
    assert table.rows[1].p == 1.0 and table.rows[1].diff == 0.0
    assert table.sentence().startswith("LSTM and GRU are level (GRU - LSTM +0.0000")
    one = compare("classification", "accuracy", [_runs("lstm", losses[:1]), _runs("gru", losses[:1])], [1])
    assert one.sentence().endswith("and seeds, 1 seed x 400 test examples.")


def test_a_model_beats_a_constant_predictor_with_a_small_p():
    rng = np.random.default_rng(3)
    y = rng.normal(size=80)
    model = (rng.normal(0, 0.3, size=(2, 80)) + y - y) ** 2  # forecasts close to the truth
    constant = np.broadcast_to((y - 0.0) ** 2 + 1.0, (2, 80))  # always the mean 0, and worse
    table = compare("forecasting", "rmse", [_runs("rnn", constant, "forecasting"), _runs("gru", model, "forecasting")],
                    [5, 6])
    assert [r.runs.cell for r in table.rows] == ["gru", "rnn"]
    assert table.rows[1].p < 0.01 and table.rows[1].diff > 0
    assert table.sentence().startswith("GRU beats RNN (RNN - GRU +")
    assert table.sentence().endswith("paired bootstrap over the test examples and seeds, 2 seeds x 80 test windows.")
    in_blocks = compare("forecasting", "rmse", [_runs("rnn", constant, "forecasting"),
                                                 _runs("gru", model, "forecasting")], [5, 6], dependence=1)
    assert in_blocks.block == 5 and in_blocks.sentence().endswith("2 seeds x 80 test windows (drawn in blocks of 5).")


def test_level_pair_then_both_beat_the_third():
    rng = np.random.default_rng(4)
    base = _errors(rng, 0.8, n=2000)
    close = base.copy()
    close[:, :10] = 1 - close[:, :10]  # a few answers differ either way
    table = compare("classification", "accuracy",
                    [_runs("lstm", base), _runs("gru", close), _runs("rnn", _errors(rng, 0.6, n=2000))], [1, 2, 3])
    said = table.sentence()
    assert said.startswith(f"{table.best.runs.cell.upper()} and ") and " are level (" in said
    assert "; both beat RNN (RNN - " in said and "p < 0.001" in said


def test_bootstrap_is_paired_and_repeatable():
    rng = np.random.default_rng(5)
    a, b = _errors(rng, 0.8), _errors(rng, 0.7)
    first = seed_bootstrap("classification", {"a": a, "b": b}, draws=500, seed=9)
    again = seed_bootstrap("classification", {"a": a, "b": b}, draws=500, seed=9)
    np.testing.assert_array_equal(first["a"], again["a"])
    assert first["a"].shape == (500,)
    assert bootstrap_p(first["a"] - first["a"]) == 1.0
    assert bootstrap_p(np.ones(999)) == pytest.approx(2 / 1000)


@pytest.mark.slow  # builds about 50 Keras models
@pytest.mark.parametrize("winner,cells", [
    (ModelSpec("forecasting", "lstm", (32,), lookback=8), ("gru", "rnn")),
    (ModelSpec("forecasting", "gru", (16, 24), lookback=8), ("lstm", "rnn")),
    (ModelSpec("classification", "lstm", (32,), bidirectional=True, embedding_dim=16), ("gru", "rnn")),
])
def test_matched_sizes_are_within_ten_percent_of_the_winner(winner, cells):
    inputs = (SeriesInputs(num_features=2, horizon=1, mean=(0.0, 0.0), variance=(1.0, 1.0))
              if winner.task == "forecasting" else TextInputs(vocabulary=tuple(f"w{i}" for i in range(300)), num_classes=2))
    target = count_params(winner, inputs)
    for cell in cells:
        matched = matched_spec(winner, cell, target, inputs)
        assert matched.cell == cell and matched.depth == winner.depth
        assert abs(count_params(matched, inputs) - target) <= 0.10 * target
        assert matched.lookback == winner.lookback and matched.bidirectional == winner.bidirectional
    rnn = matched_spec(winner, "rnn", target, inputs)
    assert rnn.units[0] > winner.units[0]  # a SimpleRNN needs more units for the same size


def test_verdict_keys_in_the_spec_and_on_the_command_line():
    spec = parse_sweep({**tiny_series_spec(), "verdict": {"seeds": 3, "match": "params"}})
    assert (spec.verdict.seeds, spec.verdict.match) == (3, "params")
    assert spec.to_dict()["verdict"] == {"seeds": 3, "match": "params"}
    assert parse_sweep(tiny_series_spec()).verdict.seeds == 0  # no verdict unless asked for
    assert spec.with_overrides(verdict_seeds=0).verdict.seeds == 0
    assert spec.with_overrides(verdict_seeds=0).verdict.match == "params"
    with pytest.raises(ConfigError, match=r"--verdict-seeds must be .*\[0, 100\]\. Got -1 instead"):
        spec.with_overrides(verdict_seeds=-1)
    with pytest.raises(ConfigError, match=r"<spec>: verdict.match must be one of none, params\. Got 'size' instead"):
        parse_sweep({**tiny_series_spec(), "verdict": {"match": "size"}})
    with pytest.raises(ConfigError, match=r"unknown key verdict.seed\. Did you mean 'seeds'\?"):
        parse_sweep({**tiny_series_spec(), "verdict": {"seed": 3}})
    # The verdict runs after the search: a resumed sweep or a worker may ask for other seeds.
    assert spec_changes(spec.to_dict(), spec.with_overrides(verdict_seeds=1).to_dict()) == []


def test_a_series_windows_are_drawn_in_blocks_and_their_autocorrelated_errors_widen_the_interval():
    """Drawn one by one, windows whose errors run in streaks gave an interval 2.4x too narrow here,
    and 'beats' at p = 0.01 where the block bootstrap finds p = 0.27."""
    assert [block_length(300, d) for d in (0, 1, 12)] == [1, 7, 12] and block_length(5, 12) == 5
    rng = np.random.default_rng(5)
    streaks = np.zeros(300)
    for t in range(1, 300):
        streaks[t] = 0.9 * streaks[t - 1] + rng.normal()
    a = rng.uniform(1, 2, size=(2, 300))  # 2 seeds x 300 windows
    b = np.maximum(a + 0.3 + 0.5 * streaks, 0.0)
    one_by_one, blocks = (seed_bootstrap("forecasting", {"a": a, "b": b}, draws=2000, seed=1, dependence=d)
                          for d in (0, 1))
    width = {name: np.subtract(*percentile_interval(r["b"] - r["a"])[::-1]) for name, r in
             (("iid", one_by_one), ("blocks", blocks))}
    assert width["blocks"] > 2 * width["iid"]
    assert bootstrap_p(one_by_one["b"] - one_by_one["a"]) < 0.05 < bootstrap_p(blocks["b"] - blocks["a"])
    whole = seed_bootstrap("forecasting", {"a": a, "b": b}, draws=50, seed=2, dependence=300)
    assert np.allclose(whole["a"], np.sqrt(a.mean(axis=1)).mean(), rtol=0.05)  # one block: every window once


def test_diebold_mariano_sees_differences_in_small_units():
    from lstm_models.tasks.paired import diebold_mariano

    rng = np.random.default_rng(0)
    a = rng.uniform(1e-10, 2e-10, 200)  # squared errors of a series in units of 1e-5
    assert diebold_mariano(a, a * 3) < 0.001  # np.allclose(d, 0) called these equal: p = 1
    assert diebold_mariano(a, a) == 1.0


def _jobs(n: int = 4):
    from lstm_models.search.crew import Job

    return [Job(i, "seeds", ModelSpec(task="forecasting", cell=("lstm", "gru")[i % 2], units=(4, 8)), 10007 + i)
            for i in range(n)]


def test_the_queue_gives_each_seed_run_to_one_process_and_keeps_its_result(tmp_path):
    from lstm_models.search.crew import Outcome, Queue

    (tmp_path / "verdict").mkdir()
    (tmp_path / "verdict" / "000.claim").write_text("worker-9")  # an earlier run's: emptied
    queue = Queue.create(tmp_path, "parent-1", _jobs())
    assert queue.read() == ("parent-1", _jobs()) and queue.file == tmp_path / "verdict" / "jobs.json"
    job = _jobs()[0]
    assert queue.claimant(job) is None and queue.claim(job, "worker-1") and not queue.claim(job, "worker-2")
    assert queue.claimant(job) == "worker-1" and queue.get(job) is None
    losses = np.array([0.25, 1.5, 4.0], "float32")
    queue.put(job, Outcome("run-1", 0.75, losses, 123))
    got = queue.get(job)
    assert (got.run_id, got.score, got.n_params, got.error) == ("run-1", 0.75, 123, "")
    assert got.losses.dtype == np.float32 and got.losses.tolist() == [0.25, 1.5, 4.0]
    assert sorted(p.name for p in queue.folder.iterdir()) == ["000.claim", "000.npz", "jobs.json"]


def test_without_workers_the_chief_trains_every_seed_run_in_order_and_stops_at_a_failure(tmp_path):
    from lstm_models.search.crew import CHIEF, Crew, Outcome, Queue

    trained, lines = [], []

    def train(job):
        trained.append(job.index)
        queue.put(job, Outcome(f"run-{job.index}", error="loss became nan at batch 3" if job.index == 1 else "",
                               score=0.5, losses=np.zeros(3)))
        return queue.get(job)

    crew = Crew(lines.append)
    queue = Queue.create(tmp_path, "parent-1", _jobs())
    crew.post(queue, _jobs())
    done = crew.outcomes(train, lambda job, who, why: pytest.fail("no worker to lose"))
    assert trained == [0, 1] and sorted(done) == [0, 1] and done[1].error == "loss became nan at batch 3"
    assert queue.stopped() and queue.claimant(_jobs()[2]) is None and lines == []  # the rest never began
    assert queue.claimant(_jobs()[0]) == CHIEF and queue.get(_jobs()[1]).error == "loss became nan at batch 3"


def test_the_chief_trains_what_dead_workers_left_and_closes_the_run_one_died_in(tmp_path):
    import subprocess
    import sys

    from lstm_models.search.crew import Crew, Outcome, Queue

    queue = Queue.create(tmp_path, "parent-1", _jobs(3))
    dead = subprocess.Popen([sys.executable, "-c", "import sys; from lstm_models.search.crew import Job, Queue; "
                             f"Queue({str(queue.folder)!r}).claim(Job(1, 'seeds', None, 0), 'worker-1'); sys.exit(3)"])
    dead.wait()  # it died in seed run 1; job 2 it had not taken
    assert queue.claimant(_jobs(3)[1]) == "worker-1" and queue.claimant_gone(_jobs(3)[1])
    lines, lost, trained = [], [], []
    crew = Crew(lines.append, {"worker-1": dead})
    crew.post(queue, _jobs(3))
    def train(job):
        trained.append(job.index)
        queue.put(job, Outcome(f"run-{job.index}", 0.5, np.zeros(2)))
        return queue.get(job)

    done = crew.outcomes(train, lambda job, who, why: lost.append((job.index, who, why)))
    assert sorted(done) == [0, 1, 2] and sorted(trained) == [0, 1, 2]
    assert lost == [(1, "worker-1", "worker-1 died (exit code 3)")]
    assert lines == ["verdict: 3 seed runs shared out between the local workers (worker-1)",
                     "chief: its workers have exited (worker-1 exit code 3); it trains the verdict's seed runs they left"]


def test_a_seed_run_a_worker_of_the_chief_before_a_resume_took_is_its_own_until_its_process_ends(tmp_path):
    """Workers that outlived their chief reconnect to the resumed one and take seed runs from the
    same queue; the new chief did not start them. It waits for such a worker's result while its
    process lives (it used to call it dead at once, close its run lost and train it twice), and
    trains the run again only once that process has ended without one."""
    import subprocess
    import sys
    import textwrap
    import time

    from lstm_models.search.crew import Crew, Outcome, Queue

    queue = Queue.create(tmp_path, "parent-1", _jobs(2))
    orphan = textwrap.dedent(f"""
        import time
        import numpy as np
        from lstm_models.search.crew import Job, Outcome, Queue
        queue, jobs = Queue({str(queue.folder)!r}), [Job(i, "seeds", None, 0) for i in range(2)]
        assert queue.claim(jobs[0], "worker-1") and queue.claim(jobs[1], "worker-1")
        time.sleep(3)
        queue.put(jobs[0], Outcome("run-orphan", 0.25, np.zeros(2)))  # then it ends, the second not done
    """)
    proc = subprocess.Popen([sys.executable, "-c", orphan])
    deadline = time.monotonic() + 60
    while queue.claimant(_jobs(2)[1]) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    lost, trained = [], []

    def train(job):
        trained.append(job.index)
        queue.put(job, Outcome(f"run-{job.index}", 0.5, np.zeros(2)))
        return queue.get(job)

    crew = Crew(lambda line: None)  # no workers of its own: the orphan is not its child
    crew.post(queue, _jobs(2))
    assert proc.poll() is None  # still in its first seed run
    done = crew.outcomes(train, lambda job, who, why: lost.append((job.index, who, why)))
    assert proc.wait(timeout=60) == 0
    assert (done[0].run_id, done[1].run_id) == ("run-orphan", "run-1") and trained == [1]
    assert lost == [(1, "worker-1", "worker-1 died (a worker of the chief before the resume)")]


def test_a_claim_names_its_process_which_is_alive_until_it_ends(tmp_path):
    from lstm_models.search.crew import Queue

    queue = Queue.create(tmp_path, "parent-1", _jobs(1))
    assert queue.claim(_jobs(1)[0], "worker-1")  # this process: alive
    assert queue.claimant(_jobs(1)[0]) == "worker-1" and queue.claimant_gone(_jobs(1)[0]) is False
    (queue.folder / "000.claim").write_text("worker-1")  # its identity unknown (no /proc)
    assert queue.claimant(_jobs(1)[0]) == "worker-1" and queue.claimant_gone(_jobs(1)[0]) is None


def test_a_resumed_sweep_keeps_the_seed_runs_its_interrupted_run_finished_as_planned_now(tmp_path):
    from dataclasses import replace

    from lstm_models.search.crew import CHIEF, KEPT, Crew, Outcome, Queue

    queue = Queue.create(tmp_path, "parent-1", _jobs())
    for job, error in zip(_jobs()[:3], ["", "loss became nan at batch 3", ""]):
        assert queue.claim(job, "worker-1")
        queue.put(job, Outcome(f"run-{job.index}", 0.5 + job.index, np.arange(3.0), 99, error))
    assert queue.claim(_jobs()[3], "worker-2")  # interrupted in this one: no result
    queue.stop()
    jobs_now = _jobs()[:2] + [replace(_jobs()[2], seed=1), _jobs()[3]]  # job 2 planned otherwise now

    kept = Queue.emptied(tmp_path, keep=True)  # the workers start before the plan: no jobs file yet
    assert not kept.file.exists() and not kept.stopped() and kept.claimant(_jobs()[0]) is None
    queue = Queue.create(tmp_path, "parent-1", jobs_now, keep=True)
    assert queue.kept(jobs_now) == [jobs_now[0]] and queue.claimant(jobs_now[0]) == KEPT
    got = queue.get(jobs_now[0])
    assert (got.run_id, got.score, got.losses.tolist(), got.n_params) == ("run-0", 0.5, [0.0, 1.0, 2.0], 99)
    assert [queue.get(j) for j in jobs_now[1:]] == [None] * 3  # failed, planned otherwise, unfinished
    assert sorted(p.name for p in queue.folder.iterdir()) == ["000.claim", "000.npz", "jobs.json"]

    lines, trained = [], []

    def train(job):
        trained.append(job.index)
        queue.put(job, Outcome(f"again-{job.index}", 0.25, np.zeros(3)))
        return queue.get(job)

    crew = Crew(lines.append)
    crew.post(queue, jobs_now)
    done = crew.outcomes(train, lambda job, who, why: pytest.fail("no worker to lose"))
    assert trained == [1, 2, 3] and done[0].run_id == "run-0" and done[3].run_id == "again-3"
    assert lines == ["verdict: 1 of 4 seed runs kept from before the interruption (FINISHED in the tracking store)"]
    assert queue.claimant(jobs_now[1]) == CHIEF
    assert Queue.create(tmp_path, "parent-2", jobs_now, keep=True).kept(jobs_now) == []  # another sweep's
    assert Queue.create(tmp_path, "parent-2", jobs_now).kept(jobs_now) == []  # not resumed: nothing kept
