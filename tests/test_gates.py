"""The gate inspector and the gradient probe: in process and through the CLI."""

import csv
import json

import keras
import numpy as np
import pytest

from lstm_models.inspect import gradients
from lstm_models.export import KERAS_FILE, META_FILE
from lstm_models.export import load_export
from lstm_models.inspect.gates import NOTES, gates_report, inspect_gates
from lstm_models.tasks.inputs import values_input
from lstm_models.errors import ConfigError
from lstm_models.models.build import ModelSpec, SeriesInputs, TextInputs, build_model, serving_model

from conftest import run_cli

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow

VOCAB = ("good", "bad", "film", "the", "dull")


def _save(model, folder, meta):
    folder.mkdir(parents=True)
    model.save(folder / KERAS_FILE)
    (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A 2-layer bidirectional LSTM text model, a GRU and a SimpleRNN forecaster (2 channels)."""
    keras.utils.set_random_seed(7)
    root = tmp_path_factory.mktemp("exports")
    words = TextInputs(vocabulary=VOCAB, num_classes=2)
    text = serving_model(build_model(ModelSpec(task="classification", cell="lstm", units=(4, 3), bidirectional=True,
                                               embedding_dim=5), words, seed=7), words)  # as exported
    series = SeriesInputs(num_features=2, horizon=1, mean=(0.5, 0.1), variance=(0.1, 0.1))
    gru = build_model(ModelSpec(task="forecasting", cell="gru", units=(4,), lookback=5), series, seed=7)
    rnn = build_model(ModelSpec(task="forecasting", cell="rnn", units=(3,), lookback=5), series, seed=7)
    window = {"task": "forecasting", "lookback": 5, "horizon": 1, "columns": ["value", "marker"]}
    return {
        "text": _save(text, root / "text", {"task": "classification", "cell": "lstm", "class_names": ["n", "p"]}),
        "gru": _save(gru, root / "gru", {**window, "cell": "gru"}),
        "rnn": _save(rnn, root / "rnn", {**window, "cell": "rnn"}),
    }


def test_inspect_gates_walks_stacked_bidirectional_layers(exports):
    model, _ = load_export(exports["text"])
    gates = inspect_gates(model, np.array(["the good film was dull"], dtype=object))
    assert [(g.layer, g.direction) for g in gates] == [
        ("bidirectional_1", "forward"), ("bidirectional_1", "backward"),
        ("bidirectional_2", "forward"), ("bidirectional_2", "backward")]
    assert [g.arrays["f"].shape for g in gates] == [(5, 4), (5, 4), (5, 3), (5, 3)]
    # The backward direction is in token order: its last output (the wrapper's) is at step 1.
    sub = keras.Model(model.inputs, model.get_layer("bidirectional_2").output)
    out = np.asarray(sub(np.array(["the good film was dull"])))
    np.testing.assert_allclose(out[0, :3], gates[2].arrays["h"][-1], atol=1e-5)
    np.testing.assert_allclose(out[0, 3:], gates[3].arrays["h"][0], atol=1e-5)


def test_values_input_reads_channels_and_counts_steps():
    meta = {"lookback": 3, "columns": ["value", "marker"]}
    x, labels = values_input(meta, "0.5:0, 0.25:1,1:0")
    np.testing.assert_array_equal(x, [[[0.5, 0], [0.25, 1], [1, 0]]])
    assert labels == ["0.5:0", "0.25:1", "1:0"]
    with pytest.raises(ConfigError, match=r"^--values: step 2 \('0.25'\) has 1 channel\(s\); the model reads 2"):
        values_input(meta, "0.5:0,0.25,1:0")


def test_jacobian_norms_match_a_linear_rnn_in_closed_form():
    # h_T = sum_t b^(T-t) a x_t, so ||dh_T/dx_t|| = |a| b^(T-t) exactly.
    layer = keras.layers.SimpleRNN(1, activation="linear", use_bias=False)
    x = np.random.default_rng(0).normal(size=(4, 6, 1)).astype("float32")
    layer(x)
    layer.set_weights([np.array([[2.0]], "float32"), np.array([[0.5]], "float32")])
    norms = gradients.jacobian_norms(lambda t: layer(t), x)
    np.testing.assert_allclose(norms, 2.0 * 0.5 ** np.arange(5, -1, -1), rtol=1e-6)


def test_jacobian_norms_match_tensorflows_own_jacobian_for_a_batch():
    import tensorflow as tf

    layer = keras.layers.LSTM(3)
    x = np.random.default_rng(2).normal(size=(2, 5, 4)).astype("float32")
    layer(x)
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        h = layer(inputs)
    full = tape.batch_jacobian(h, inputs).numpy()  # (batch, units, time, features)
    expected = np.sqrt((full.astype("float64") ** 2).sum(axis=(1, 3))).mean(axis=0)
    np.testing.assert_allclose(gradients.jacobian_norms(lambda t: layer(t), x), expected, rtol=1e-5)


def test_an_open_forget_gate_carries_the_gradient_back():
    x = np.random.default_rng(1).normal(size=(2, 20, 1)).astype("float32")
    decay = {}
    for bias in (-3.0, 3.0):
        layer = keras.layers.LSTM(6)
        layer(x[:1])
        kernel, recurrent, b = layer.get_weights()
        b[6:12] = bias  # the forget-gate block (order i, f, c, o)
        layer.set_weights([kernel, recurrent, b])
        norms = gradients.jacobian_norms(lambda t: layer(t), x)
        decay[bias] = norms[0] / norms[-1]
    assert decay[3.0] > 1e3 * decay[-3.0]


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_gates_cli_on_a_text_model(exports, tmp_path):
    done = run_cli("gates", str(exports["text"]), "--text", "The film, sadly, was DULL!", "--out", "g", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _rows(tmp_path / "g" / "gates.csv")
    assert len(rows) == 2 * 2 * 5 * 6  # layers x directions x steps x (f, i, c_tilde, c, o, h)
    assert [r["token"] for r in rows if r["gate"] == "f" and r["layer"] == "bidirectional_1"
            and r["direction"] == "forward"] == ["the", "film", "sadly (unknown)", "was (unknown)", "dull"]
    first = rows[0]
    assert (first["layer"], first["step"], first["gate"]) == ("bidirectional_1", "1", "f")
    assert float(first["mean"]) == pytest.approx(np.mean([float(first[f"unit_{u}"]) for u in range(4)]), abs=1e-5)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("bidirectional_1: the forget gate f closed most at step ")
    assert len(lines) == 5 and lines[-1] == f"wrote {'g/gates.csv'} and {'g/gates.png'} (5 steps)"
    assert (tmp_path / "g" / "gates.png").read_bytes()[:4] == b"\x89PNG"


def test_gates_cli_on_a_gru_forecaster(exports, tmp_path):
    done = run_cli("gates", str(exports["gru"]), "--values", "0.1:0,0.9:1,0.3:0,0.2:1,0.5:0", "--out", "gru",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("GRU has no forget gate; its update gate z plays that part")
    assert lines[1].startswith("gru_1: the update gate z closed most at step ")
    rows = _rows(tmp_path / "gru" / "gates.csv")
    assert len(rows) == 5 * 4 and [r["gate"] for r in rows[:4]] == ["z", "r", "h_tilde", "h"]
    assert rows[4]["token"] == "0.9:1"


def test_a_simple_rnn_has_only_h(exports, tmp_path):
    model, meta = load_export(exports["rnn"])
    x, labels = values_input(meta, "1:0,2:0,3:1,4:0,5:1")
    lines = gates_report(model, x, labels, tmp_path)
    assert lines == [NOTES["rnn"]] and NOTES["rnn"].startswith("SimpleRNN has no gates: h_t = tanh(")
    rows = _rows(tmp_path / "gates.csv")
    assert len(rows) == 5 and {r["gate"] for r in rows} == {"h"} and rows[2]["token"] == "3:1"
    h = np.array([[float(r[f"unit_{u}"]) for u in range(3)] for r in rows])
    np.testing.assert_allclose(h[-1], np.asarray(model.get_layer("rnn_1")(
        model.get_layer("normalize")(x)))[0], atol=1e-5)


def test_gates_cli_bad_input_is_one_line_exit_2(exports, tmp_path):
    meta = exports["gru"] / "meta.json"
    cases = [
        (["gates", str(tmp_path / "nope"), "--text", "x"], f"{tmp_path / 'nope'}: no such export folder"),
        (["gates", str(exports["gru"]), "--text", "good"],
         "--text: this export is a forecasting model; give --values (5 comma-separated values)"),
        (["gates", str(exports["gru"]), "--values", "1:0,2:0"],
         "--values: the model reads windows of 5 steps; got 2 values"),
        (["gradients", "--cells", "lstm,transformer"], "--cells: 'transformer' is not one of lstm, gru, rnn"),
        (["gradients", "--trained", str(exports["text"].parent)],
         f"{exports['text'].parent}: no model.keras in this folder; is it a folder written by lstm-models sweep?"),
        (["gates", str(exports["gru"]), "--values", "1:0,2:0,3:0,4:0,5:0", "--out", str(meta)],
         f"--out {meta}: {meta.resolve()} is a file, not a folder"),
        (["gates", str(exports["gru"]), "--values", "1:0,2:0,3:0,4:0,5:0", "--out", str(meta / "x")],
         f"--out {meta / 'x'}: {meta.resolve()} is a file, not a folder"),  # as sweep --output says it
        (["gradients", "--cells", "rnn", "--out", str(meta / "x")], f"--out {meta / 'x'}: {meta.resolve()} is a file"),
        (["gates", str(exports["gru"]), "--values", "1:0,2:0,3:0,4:0,nan:1"],
         "--values: step 5 ('nan:1') is not a finite number"),
        (["gates", str(exports["gru"]), "--values", "1:0,inf:0,3:0,4:0,5:0"], "--values: step 2 ('inf:0') is not a finite number"),
        (["gates", str(exports["gru"]), "--values", "1:0,2:0,3:1e400,4:0,5:0"],
         "--values: step 3 ('3:1e400') is not a finite number"),
        (["gates", str(exports["gru"]), "--values", "1:0,2:0,3:0,1e39:0,5:0"],  # finite, but not in float32
         "--values: step 4 ('1e39:0') is not a finite number"),
    ]
    for args, message in cases:
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().startswith(f"lstm-models: error: {message}"), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # checked before TensorFlow loads
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_gradients_cli_fresh_and_trained(exports, tmp_path):
    done = run_cli("gradients", "--cells", "rnn", "--length", "12", "--units", "4", "--batch", "2",
                   "--trained", str(exports["gru"]), "--out", "grad", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _rows(tmp_path / "grad" / "gradients.csv")
    assert list(rows[0]) == ["t", "steps_before_T", "rnn (fresh, 4 units)", "gru (trained: gru)"]
    assert [r["t"] for r in rows] == [str(t) for t in range(1, 13)] and rows[-1]["steps_before_T"] == "0"
    assert all(float(v) > 0 for r in rows for k, v in r.items() if k not in ("t", "steps_before_T"))
    lines = done.stdout.splitlines()
    assert lines[0].startswith("rnn (fresh, 4 units): ||dh_T/dx_T|| ") and "over 11 steps" in lines[0]
    assert lines[1].startswith("gru (trained: gru): ") and lines[-1] == "wrote grad/gradients.csv and grad/gradients.png"
    assert (tmp_path / "grad" / "gradients.png").stat().st_size > 1000
