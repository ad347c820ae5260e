"""The peer: the Keras Tuner script a Keras user writes in ten minutes, for `make bench`'s peer section.

`kt.RandomSearch` over the cell (LSTM/GRU/SimpleRNN), depth 1-2, units 32/64/128, dropout 0-0.5
and Adam's learning rate 1e-4..1e-2 (log); `TextVectorization` inside the model, sequences padded
to 64 tokens, `Embedding(64, mask_zero=True)`, batch 64, `EarlyStopping(patience=2)`; no
tracking, no baselines. The data is read by lstm-models' own loader, so that both sides train,
validate and test on the same sentences. It prints one JSON line: the test accuracy of the best
model and the seconds of each phase.

    python benchmarks/peer.py SPEC [--trials 12] [--epochs 4] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}


def load(spec_path: str):
    from lstm_models.data import load_dataset
    from lstm_models.spec.sweep import load_sweep

    splits = load_dataset(load_sweep(spec_path).dataset, ROOT / "datasets" / "cache")
    return {p: (tf.constant([str(t) for t in splits.texts[p]])[:, None], np.asarray(splits.labels[p]))
            for p in ("train", "val", "test")}


def batches(data, part: str, seed: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(data[part])
    ds = ds.shuffle(len(data[part][1]), seed=seed, reshuffle_each_iteration=True) if part == "train" else ds
    return ds.batch(64).prefetch(tf.data.AUTOTUNE)


def make_build(vectorize):
    def build(hp):
        inputs = keras.Input(shape=(1,), dtype="string")
        x = keras.layers.Embedding(vectorize.vocabulary_size(), 64, mask_zero=True)(vectorize(inputs))
        cell = CELLS[hp.Choice("cell", list(CELLS))]
        depth = hp.Int("depth", 1, 2)
        for i in range(depth):
            x = cell(hp.Choice(f"units_{i}", [32, 64, 128]), return_sequences=i < depth - 1)(x)
            x = keras.layers.Dropout(hp.Float(f"dropout_{i}", 0.0, 0.5, step=0.1))(x)
        outputs = keras.layers.Dense(1, activation="sigmoid")(x)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
                      loss="binary_crossentropy", metrics=["accuracy"])
        return model
    return build


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="a sweep spec whose dataset the peer reads (sweeps/sentiment.yaml)")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--folder", default=None, help="Keras Tuner's directory (default: a temporary one)")
    args = ap.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    data = load(args.spec)
    vectorize = keras.layers.TextVectorization(max_tokens=10_000, output_sequence_length=64)
    vectorize.adapt(data["train"][0][:, 0])
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peer-") as tmp:
        tuner = kt.RandomSearch(make_build(vectorize), objective="val_accuracy", max_trials=args.trials,
                                seed=args.seed, directory=args.folder or tmp, project_name="peer", overwrite=True)
        tuner.search(batches(data, "train", args.seed), validation_data=batches(data, "val", args.seed),
                     epochs=args.epochs, verbose=0, callbacks=[keras.callbacks.EarlyStopping(patience=2)])
        searched = time.perf_counter()
        best = tuner.get_best_models(1)[0]
        _, accuracy = best.evaluate(batches(data, "test", args.seed), verbose=0)
        cell = tuner.get_best_hyperparameters(1)[0].values["cell"]
    done = time.perf_counter()
    print(json.dumps({"test_accuracy": float(accuracy), "best_cell": cell, "trials": args.trials,
                      "import_seconds": started - START, "data_seconds": loaded - started,
                      "search_seconds": searched - loaded, "test_seconds": done - searched,
                      "seconds": done - START}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
