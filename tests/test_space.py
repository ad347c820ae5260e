import keras_tuner as kt

from lstm_models.spec.sweep import parse_sweep
from lstm_models.search.space import sample_spec


def _space(task="classification", **search):
    kind = "sentiment" if task == "classification" else "statsmodels"
    return parse_sweep({"name": "x", "task": task, "dataset": {"kind": kind}, "search": search})


def test_first_call_declares_the_space_with_conditions():
    spec = _space(depth={"min": 1, "max": 3}, units=[8, 16], cells=["lstm", "gru"])
    hp = kt.HyperParameters()
    sample_spec(hp, spec.search, spec.task)
    names = {h.name for h in hp.space}
    assert {"cell", "depth", "units", "units_2", "units_3", "unit_forget_bias", "embedding_dim"} <= names
    assert "lookback" not in names


def test_inactive_hyperparameters_are_not_active_or_used():
    spec = _space(depth={"min": 1, "max": 3}, units=[8, 16], cells=["lstm", "gru"])
    hp = kt.HyperParameters()
    sample_spec(hp, spec.search, spec.task)
    hp.values.update({"depth": 2, "cell": "gru", "units_2": 16})  # as the oracle would set them
    model_spec = sample_spec(hp, spec.search, spec.task)
    assert model_spec.depth == 2 and model_spec.cell == "gru"
    assert hp.is_active("units_2") and not hp.is_active("units_3")
    assert not hp.is_active("unit_forget_bias")
    assert set(model_spec.params()) >= {"units", "units_2"} and "units_3" not in model_spec.params()


def test_forecasting_searches_lookback_not_text_settings():
    spec = _space("forecasting")
    hp = kt.HyperParameters()
    model_spec = sample_spec(hp, spec.search, spec.task, spec.dataset.get("lookback"))
    names = {h.name for h in hp.space}
    assert "lookback" in names and "embedding_dim" not in names and "bidirectional" not in names
    assert model_spec.lookback in (8, 16, 32)


def test_single_cell_space_has_no_choice():
    spec = _space(cells="rnn")
    hp = kt.HyperParameters()
    assert sample_spec(hp, spec.search, spec.task).cell == "rnn"
    assert "unit_forget_bias" not in {h.name for h in hp.space}


def test_a_trials_seed_comes_from_its_values_not_its_number():
    from lstm_models.search.space import trial_seed

    config = {"cell": "gru", "units": 32, "dropout": 0.3, "learning_rate": 0.00812}
    continued = {**config, "tuner/epochs": 4, "tuner/initial_epoch": 2, "tuner/bracket": 1, "tuner/round": 1}
    # the same configuration continued from a parent and in a bracket numbered otherwise
    assert trial_seed(42, {**continued, "tuner/trial_id": "0001"}) == trial_seed(
        42, {**continued, "tuner/trial_id": "0003", "tuner/bracket": 0})
    assert trial_seed(42, config) == trial_seed(42, dict(reversed(config.items())))
    seeds = [trial_seed(42, config), trial_seed(43, config), trial_seed(42, continued),
             trial_seed(42, {**config, "units": 64}), trial_seed(42, {**config, "learning_rate": 0.00813})]
    assert len(set(seeds)) == 5 and all(0 <= s < 2**31 - 1 for s in seeds)


def test_integer_log_ranges_declare_the_values_keras_tuner_samples():
    ranges = {"depth": {"min": 1, "max": 3, "sampling": "log"}, "units": {"min": 4, "max": 100, "step": 3, "sampling": "log"},
              "batch_size": {"min": 8, "max": 64, "sampling": "log"}, "embedding_dim": {"min": 4, "max": 20, "step": 5}}
    spec = _space(**ranges)
    hp = kt.HyperParameters()
    sample_spec(hp, spec.search, spec.task)  # Keras Tuner refused a log Int with step 1: "expected step > 1"
    declared = {h.name: h for h in hp.space}
    assert (declared["depth"].step, declared["units"].step, declared["units"].sampling) == (None, 3, "log")
    expected = {"depth": [1, 2, 3], "units": [4, 12, 36], "batch_size": list(range(8, 65)), "embedding_dim": [4, 9, 14, 19]}
    for name, values in expected.items():
        sampled = sorted({declared[name].prob_to_value(i / 4000) for i in range(4000)})
        assert list(getattr(spec.search, name).candidates) == sampled == values


def test_a_log_step_on_depth_is_a_factor_and_every_depth_has_its_units():
    spec = _space(cells=["gru"], units=8, depth={"min": 1, "max": 3, "step": 2, "sampling": "log"})
    hp = kt.HyperParameters()
    sample_spec(hp, spec.search, spec.task)
    assert {h.name for h in hp.space} >= {"units_2"} and "units_3" not in {h.name for h in hp.space}
    hp.values.update({"depth": 2, "units_2": 8})  # Keras Tuner's depths are 1 and 2 (1 * 2), not 1 and 3
    assert sample_spec(hp, spec.search, spec.task).units == (8, 8) and hp.is_active("units_2")
