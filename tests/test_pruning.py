"""The median pruner (lstm_models.search.pruning): the rule, the oracle's answer (also through Keras
Tuner's gRPC service, as a worker gets it), and a sweep whose pruned trials are checked against
the metrics in its MLflow store."""

import statistics

import keras_tuner as kt
import pytest
from keras_tuner.src.distribute import oracle_chief
from keras_tuner.src.protos import get_service

from lstm_models.errors import ConfigError
from lstm_models.search.pruning import Pruned, report_epoch
from lstm_models.spec.sweep import PruningSpec, parse_sweep

from conftest import tiny_series_spec, toy_series_splits

STOPPED = kt.engine.trial.TrialStatus.STOPPED


def _oracle(direction="min", **pruning):
    rule = PruningSpec(**{"kind": "median", **pruning})
    cls = type("PrunedRandom", (Pruned, kt.oracles.RandomSearchOracle), {"pruning": rule})
    oracle = cls(objective=kt.Objective("val_rmse", direction), max_trials=20, seed=1)
    oracle.hyperparameters.Int("units", 1, 100)
    return oracle


def _ended(oracle, values):
    """A trial that reported ``values`` (one per epoch) and ended."""
    trial = oracle.create_trial(f"t{len(oracle.trials)}")
    for step, value in enumerate(values):
        oracle.update_trial(trial.trial_id, {"val_rmse": value}, step=step)
    trial.status = kt.engine.trial.TrialStatus.COMPLETED
    oracle.end_trial(trial)
    return trial


def test_a_trial_worse_than_the_median_at_an_epoch_is_stopped_once_the_warm_up_is_over(tmp_path):
    oracle = _oracle(warmup_trials=3, warmup_epochs=1)
    oracle._set_project_dir(str(tmp_path), "p")
    _ended(oracle, [5.0, 4.0])
    _ended(oracle, [6.0, 3.0])
    trial = oracle.create_trial("runner")
    # two ended trials only: no decision yet, however bad the epoch
    assert oracle.update_trial(trial.trial_id, {"val_rmse": 99.0}, step=1).status == "RUNNING"
    _ended(oracle, [7.0, 2.0, 1.0])
    # epoch 1 (0-based) is inside the warm-up of one epoch: never judged
    assert oracle.update_trial(trial.trial_id, {"val_rmse": 99.0}, step=0).status == "RUNNING"
    # median of 4.0, 3.0, 2.0 is 3.0: 2.5 is better, 3.5 worse
    assert oracle.update_trial(trial.trial_id, {"val_rmse": 2.5}, step=1).status == "RUNNING"
    assert report_epoch(oracle, trial.trial_id, {"val_rmse": 3.5, "rmse": 1.0}, 1) == (
        "val_rmse 3.5000 is worse than the median 3.0000 of 3 ended trials at epoch 2")
    # only one ended trial reached epoch 3: below the warm-up of trials
    assert report_epoch(oracle, trial.trial_id, {"val_rmse": 9.0}, 2) == ""
    # the oracle's own record of the trial runs on; its reports are kept
    assert oracle.trials[trial.trial_id].status == "RUNNING"
    assert oracle.trials[trial.trial_id].metrics.get_history("val_rmse")[-1].value == [9.0]


def test_accuracy_prunes_below_the_median_and_kind_none_never_prunes(tmp_path):
    for kind, expected in (("median", STOPPED), ("none", "RUNNING")):
        oracle = _oracle("max", kind=kind, warmup_trials=1, warmup_epochs=0)
        oracle._set_project_dir(str(tmp_path / kind), "p")
        _ended(oracle, [0.7])
        trial = oracle.create_trial("runner")
        assert oracle.update_trial(trial.trial_id, {"val_rmse": 0.8}, step=0).status == "RUNNING"
        assert oracle.update_trial(trial.trial_id, {"val_rmse": 0.6}, step=0).status == expected


def test_a_worker_gets_the_stop_and_the_median_through_the_grpc_service(tmp_path):
    oracle = _oracle(warmup_trials=2, warmup_epochs=0)
    oracle._set_project_dir(str(tmp_path), "p")
    _ended(oracle, [4.0])
    _ended(oracle, [2.0])
    trial = oracle.create_trial("worker-1")
    servicer = oracle_chief.OracleServicer(oracle)
    request = get_service().UpdateTrialRequest(trial_id=trial.trial_id, metrics={"val_rmse": 3.25}, step=0)
    answer = kt.engine.trial.Trial.from_proto(servicer.UpdateTrial(request, None).trial)
    assert answer.status == STOPPED
    assert answer.metrics.get_last_value("pruning/median") == 3.0
    assert answer.metrics.get_last_value("pruning/ended_trials") == 2


def test_the_pruning_section_is_checked_and_the_command_line_sets_its_kind():
    spec = parse_sweep({**tiny_series_spec(), "pruning": {"warmup_trials": 3}})
    assert spec.pruning == PruningSpec("none", 3, 1)
    assert parse_sweep(tiny_series_spec()).pruning == PruningSpec("none", 4, 1)
    assert spec.to_dict()["pruning"] == {"kind": "none", "warmup_trials": 3, "warmup_epochs": 1}
    assert spec.with_overrides(pruning="median").pruning == PruningSpec("median", 3, 1)
    with pytest.raises(ConfigError, match=r"^<spec>: pruning.kind must be one of median, none. Got 'asha'"):
        parse_sweep({**tiny_series_spec(), "pruning": {"kind": "asha"}})
    with pytest.raises(ConfigError, match=r"^<spec>: unknown key pruning.warmup\."):
        parse_sweep({**tiny_series_spec(), "pruning": {"warmup": 2}})
    with pytest.raises(ConfigError, match=r"pruning.warmup_trials must be an int in \[1, 10000\]. Got 0"):
        parse_sweep({**tiny_series_spec(), "pruning": {"warmup_trials": 0}})


@pytest.mark.slow
def test_a_sweep_prunes_by_the_median_of_its_ended_trials_and_records_it(tmp_path, seed):
    from mlflow.tracking import MlflowClient

    from lstm_models.search.run import Hooks, SweepPaths, run_sweep
    from lstm_models.tracking.mlflow_store import MLflowTracker
    from lstm_models.tracking.report import format_leaderboard

    spec = parse_sweep({**tiny_series_spec(max_trials=5, max_epochs=3), "early_stopping": {"patience": 0},
                        "pruning": {"kind": "median", "warmup_trials": 1, "warmup_epochs": 0}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lines = []
    result = run_sweep(spec, toy_series_splits(), MLflowTracker(uri), SweepPaths(tmp_path / "exports"),
                       hooks=Hooks(log=lines.append))
    client = MlflowClient(uri)
    history = {t.trial_id: [m.value for m in sorted(client.get_metric_history(t.run_id, "val_rmse"),
                                                    key=lambda m: m.step)] for t in result.trials}
    pruned = [t for t in result.trials if t.pruned_epoch is not None]
    assert pruned and len(pruned) < len(result.trials)
    ended: list = []
    for t in result.trials:  # one process: trials end in the order they ran
        values, tags = history[t.trial_id], client.get_run(t.run_id).data.tags
        assert t.status == "FINISHED" and t.objective == min(values)
        assert t.best_epoch == values.index(min(values))
        if t.pruned_epoch is None:
            assert len(values) == 3 and "pruned" not in tags
            # never worse than the median of the trials ended before it, at any epoch but its last
            for step, value in enumerate(values[:-1]):
                earlier = [h[step] for h in ended if len(h) > step]
                assert not earlier or value <= statistics.median(earlier)
        else:
            assert len(values) == t.epochs == t.pruned_epoch < 3
            assert tags["pruned"] == "true" and tags["pruned_epoch"] == str(t.pruned_epoch)
            step = t.pruned_epoch - 1
            median = statistics.median([h[step] for h in ended if len(h) > step])
            assert values[step] > median
            assert (f"    pruned after epoch {t.pruned_epoch}: val_rmse {values[step]:.4f} is worse than the median "
                    f"{median:.4f} of {sum(len(h) > step for h in ended)} ended trials at epoch {t.pruned_epoch}"
                    ) in lines
        ended.append(values)
    assert f"5 trials (0 failed, {len(pruned)} pruned) in" in format_leaderboard(result)
