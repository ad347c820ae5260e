"""`make bench`: where a sweep's time goes, each figure a ratio measured side by side in one run.

Sections (run all, or name some): throughput, pipeline, hardware, tracking, serving, search,
gpu. Each writes benchmarks/results/<section>.json; the tables go into docs/benchmarks.md between
the `bench` markers. Timings are medians of --repeats runs after a warm-up run.

    python benchmarks/bench.py [SECTION ...] [--repeats 5] [--search-trials 40 --search-seeds 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_models.spec.sweep import parse_sweep  # noqa: E402
from lstm_models.models.build import CELLS, ModelSpec, SeriesInputs, TextInputs, build_model, serving_model  # noqa: E402
from lstm_models.tasks import task_for  # noqa: E402
from lstm_models.tasks.feed import feed  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from op_profile import op_profile  # noqa: E402
from report_bench import update_page  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TEXT = dict(vocab=20_000, length=200, embedding=64, units=64, batch=64)
SERIES = dict(window=64, units=64, batch=64)
SHORT_WINDOW = 16  # the sunspots sweep's middle lookback: short windows are unrolled by default


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    return median_times({"fn": fn}, repeats)["fn"]


def median_times(fns: dict, repeats: int, warm: bool = True) -> dict:
    """Each function's median wall time over ``repeats`` runs, after one warm-up run each (unless
    the caller ran them: ``warm=False``), the functions taking turns run by run, so that the
    machine's drifts in speed fall on all alike."""
    for fn in fns.values() if warm else ():
        fn()
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _batches(x, y, size: int):
    """In-memory arrays as cached batches, through `feed` (tf.data's autotuner off): with it on,
    timed epochs ended on its 10 ms x (2^k - 1) stalls (0.31, 0.63, 1.27 s), and a throughput
    row's ratio moved by up to 1.9x between two runs."""
    return feed(tf.data.Dataset.from_tensor_slices((x, y)).batch(size).cache())


def _fit_epoch(model, data, **kw):
    return lambda: model.fit(data, epochs=1, verbose=0, **kw)


# --- throughput: our model and loop vs a bare keras-io script, our defaults vs Keras' --------

def _bare_text(cell: str) -> keras.Model:
    """What a keras-io example writes: Sequential, string-free int input, Keras defaults."""
    model = keras.Sequential([
        keras.Input(shape=(TEXT["length"],), dtype="int64"),
        keras.layers.Embedding(TEXT["vocab"], TEXT["embedding"]),
        CELLS[cell](TEXT["units"]),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _bare_series(cell: str, window: int) -> keras.Model:
    model = keras.Sequential([keras.Input(shape=(window, 1)), CELLS[cell](SERIES["units"]),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def bench_throughput(repeats: int, n: int = 1024) -> dict:
    rng = np.random.default_rng(0)
    ids = rng.integers(2, TEXT["vocab"], size=(n, TEXT["length"]))
    labels = rng.integers(0, 2, size=n)
    vocab = TextInputs(vocabulary=tuple(f"w{i}" for i in range(TEXT["vocab"] - 2)), num_classes=2)
    m = 4 * n  # series steps are cheap: more samples keep each timed epoch long enough to measure
    targets = rng.normal(size=(m, 1)).astype("float32")
    series = SeriesInputs(num_features=1, horizon=1, mean=(0.0,), variance=(1.0,))
    # Both models of a row read the same cached batches (`_batches`).
    cases = [("text", _bare_text, _batches(ids, labels.astype("float32"), TEXT["batch"]),
              _batches(ids, labels, TEXT["batch"]), vocab,
              dict(task="classification", units=(TEXT["units"],), embedding_dim=TEXT["embedding"],
                   batch_size=TEXT["batch"]), n)]
    for window in (SERIES["window"], SHORT_WINDOW):
        windows = rng.normal(size=(m, window, 1)).astype("float32")
        series_ds = _batches(windows, targets, SERIES["batch"])
        cases.append((f"series, window {window}", lambda cell, w=window: _bare_series(cell, w), series_ds,
                      series_ds, series, dict(task="forecasting", units=(SERIES["units"],), lookback=window,
                                              batch_size=SERIES["batch"]), m))
    rows = []
    for task, bare, bare_ds, ds, inputs, spec_kw, count in cases:
        for cell in CELLS:
            keras.backend.clear_session()
            # Each model's warm-up epoch right after its build: TensorFlow reads the Grappler setting
            # that `build_model` makes (off for text, on with XLA) when a function first runs.
            b = bare(cell)
            fits = {"bare": _fit_epoch(b, bare_ds)}
            fits["bare"]()
            spec = ModelSpec(cell=cell, clipnorm=1.0, **spec_kw)
            ours = build_model(spec, inputs)
            fits["ours"] = _fit_epoch(ours, ds)
            fits["ours"]()
            xla = build_model(spec, inputs, jit_compile=True)
            fits["xla"] = _fit_epoch(xla, ds)
            fits["xla"]()  # the compile
            seconds = median_times(fits, repeats, warm=False)
            bare_s, ours_s, xla_s = seconds["bare"], seconds["ours"], seconds["xla"]
            rows.append({"task": task, "cell": cell, "bare_samples_s": count / bare_s,
                         "ours_samples_s": count / ours_s, "ours_xla_samples_s": count / xla_s,
                         "ours_vs_bare": bare_s / ours_s, "xla_vs_ours": ours_s / xla_s,
                         "unrolled": any(getattr(layer, "unroll", False) for layer in ours.layers)})
            print(f"throughput {task} {cell}: bare {count / bare_s:.0f}/s ours {count / ours_s:.0f}/s "
                  f"(x{bare_s / ours_s:.2f}); ours with XLA {count / xla_s:.0f}/s", flush=True)
    return {"shapes": {"text": TEXT, "series": SERIES, "short_window": SHORT_WINDOW},
            "samples_per_repeat": {"text": n, "series": m}, "rows": rows}


# --- input pipeline on the sentiment default: padding with and without a mask vs buckets -----

def _sentiment():
    from lstm_models.data import load_dataset

    spec = parse_sweep({"name": "bench", "task": "classification", "dataset": {"kind": "sentiment"}})
    data = load_dataset(spec.dataset, ROOT / "datasets" / "cache")
    return data, task_for(data).make_inputs(spec.dataset.get("max_tokens"))


PIPELINES = {  # name: whether the model masks the padding, its batches are length buckets, tf.data autotunes
    "bare": (False, False, False),  # a keras-io script without mask_zero, padded to the longest text: it reads the padding
    "fixed_masked": (True, False, False),  # the same with mask_zero=True: what a careful script does
    "ours": (True, True, False),  # `TextBatches`: padded to a bucket's boundary (8, 16, 32, 64 tokens), masked
    "ours_autotuned": (True, True, True),  # the same with tf.data's autotuner on (what `feed` turns off)
}


def _autotuned(ds):
    options = tf.data.Options()
    options.autotune.enabled = True
    return ds.with_options(options)


def _fixed(ours, data, part: str, batch: int, longest: int, shuffle_seed: int | None = None):
    """The pipeline's token ids, every batch padded to ``longest`` tokens (the longest training text),
    fed to Keras as ours are."""
    ids = ours.padded(part, np.arange(data.sizes()[part]), width=longest)
    ds = tf.data.Dataset.from_tensor_slices((ids, data.part(part)[1]))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(ids), seed=shuffle_seed, reshuffle_each_iteration=True)
    return feed(ds.batch(batch))


def _pipeline_model(spec, inputs, masked: bool, seed: int = 0):
    """Our model (one layer, its last state); unmasked: what a keras-io script writes, with our
    model's initial weights, compiled with the same optimizer, loss and metrics."""
    model = build_model(spec, inputs, seed=seed)
    if masked:
        return model
    bare = keras.Sequential([keras.Input(shape=(None,), dtype="int64"),
                             keras.layers.Embedding(len(inputs.vocabulary) + 2, spec.embedding_dim),
                             CELLS[spec.cell](spec.units[0]), keras.layers.Dense(inputs.num_classes, activation="softmax")])
    bare.set_weights(model.get_weights())
    loss, metrics = inputs.objective()
    bare.compile(optimizer=type(model.optimizer).from_config(model.optimizer.get_config()), loss=loss, metrics=metrics)
    return bare


def bench_pipeline(repeats: int) -> dict:
    """Each pipeline trains the same model from the same initial weights; after a first epoch (the
    trace), the pipelines take turns, one epoch each, ``repeats`` times, so that the machine's drift
    falls on all of them. Speed: the median epoch (with its validation); accuracy: the best
    validation accuracy of the ``repeats + 1`` epochs."""
    data, inputs = _sentiment()
    ours = task_for(data).batches(inputs)
    n, longest = data.sizes()["train"], int(ours.lengths["train"].max())
    rows = []
    for cell in CELLS:
        spec = ModelSpec(task="classification", cell=cell, units=(64,), embedding_dim=64, batch_size=64)
        keras.backend.clear_session()
        runs = {}
        for name, (masked, bucketed, autotuned) in PIPELINES.items():
            if bucketed:
                parts = ours("train", spec, shuffle_seed=1), ours("val", spec)
            else:
                parts = (_fixed(ours, data, "train", spec.batch_size, longest, 1),
                         _fixed(ours, data, "val", spec.batch_size, longest))
            if autotuned:
                parts = tuple(map(_autotuned, parts))
            runs[name] = (_pipeline_model(spec, inputs, masked), *parts, [], [])
        for turn in range(repeats + 1):
            for name, (model, train, val, times, accuracy) in runs.items():
                start = time.perf_counter()
                history = model.fit(train, validation_data=val, epochs=1, verbose=0)
                times.append(time.perf_counter() - start)
                accuracy.append(history.history["val_accuracy"][-1])
        row = {"cell": cell}
        for name, (_, _, _, times, accuracy) in runs.items():
            row[name] = {"samples_s": n / statistics.median(times[1:]), "first_epoch_s": times[0],
                         "slowest_epoch_s": max(times[1:]), "val_accuracy": max(accuracy)}
        row.update({"ours_vs_bare": row["ours"]["samples_s"] / row["bare"]["samples_s"],
                    "ours_vs_fixed_masked": row["ours"]["samples_s"] / row["fixed_masked"]["samples_s"],
                    "ours_vs_autotuned": row["ours"]["samples_s"] / row["ours_autotuned"]["samples_s"],
                    **_xla_cost(spec, inputs, ours("train", spec, shuffle_seed=1).cache(), ours("val", spec).cache(),
                                repeats)})
        rows.append(row)
        print(f"pipeline {cell}: " + ", ".join(f"{k} {row[k]['samples_s']:.0f}/s val {row[k]['val_accuracy']:.4f}"
                                                 for k in PIPELINES)
              + f"; XLA: first epoch {row['xla_first_epoch_s']:.1f}s vs {row['first_epoch_s']:.1f}s, then "
                f"{row['xla_epoch_s']:.2f}s vs {row['epoch_s']:.2f}s", flush=True)
    return {"epochs": repeats + 1, "boundaries": ours.boundaries, "fixed_length": longest, "rows": rows}


def _xla_cost(spec, inputs, train, val, repeats: int) -> dict:
    """What XLA costs and saves in a real trial: epoch 1 (with validation) holds the compiles, one
    per batch shape (each bucket's full and last batch, for training and for validation)."""
    out = {}
    for key, jit in (("", False), ("xla_", True)):
        keras.backend.clear_session()
        model = build_model(spec, inputs, jit_compile=jit)
        start = time.perf_counter()
        model.fit(train, validation_data=val, epochs=1, verbose=0)
        out[f"{key}first_epoch_s"] = time.perf_counter() - start
        out[f"{key}epoch_s"] = median_time(lambda m=model: m.fit(train, validation_data=val, epochs=1, verbose=0),
                                           repeats)
    saved = out["epoch_s"] - out["xla_epoch_s"]
    extra = out["xla_first_epoch_s"] - out["first_epoch_s"]
    out["xla_break_even_epochs"] = 1 + extra / saved if saved > 0 else None
    return out


# --- distance to the hardware: LSTM training FLOP/s vs a large matmul -----------------------

def matmul_flops(repeats: int, n: int = 2048) -> float:
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))

    @tf.function
    def mm():
        return tf.reduce_sum(tf.matmul(a, b))

    seconds = median_time(lambda: mm().numpy(), repeats)
    return 2 * n**3 / seconds


def bench_hardware(repeats: int, n: int = 256) -> dict:
    peak = matmul_flops(repeats)
    rows = []
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, TEXT["length"], TEXT["embedding"])).astype("float32")
    y = rng.integers(0, 2, size=(n,))
    ds = _batches(x, y, TEXT["batch"])
    for units in (64, 256):
        keras.backend.clear_session()
        model = keras.Sequential([keras.Input((TEXT["length"], TEXT["embedding"])), keras.layers.LSTM(units),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        seconds = median_time(_fit_epoch(model, ds), repeats)
        # Forward: 4 gates x (input + recurrent) matmuls = 2 * 4u(d + u) FLOP per step and sample;
        # backward about twice that. Elementwise gate work is left out (a lower bound).
        flop = 3 * 2 * 4 * units * (TEXT["embedding"] + units) * TEXT["length"] * n
        profile = op_profile(_fit_epoch(model, ds), steps=n // TEXT["batch"] * TEXT["length"])
        rows.append({"units": units, "lstm_flops": flop / seconds, "fraction_of_matmul": flop / seconds / peak,
                     "profile": profile})
        print(f"hardware lstm {units}: {flop / seconds / 1e9:.1f} GFLOP/s = {flop / seconds / peak:.1%} of matmul; "
              f"{profile['dispatches_per_step']:.0f} executor dispatches per time step, "
              f"{profile['mean_dispatch_us']:.1f} us each; matmul {profile['share']['matmul']:.0%} of busy time", flush=True)
    return {"matmul_gflops": peak / 1e9, "rows": rows}


# --- tracking overhead: the same 3-epoch trial with and without MLflow ----------------------

def bench_tracking(repeats: int) -> dict:
    from lstm_models.search.run import Hooks, SweepPaths, run_sweep
    from lstm_models.tracking.mlflow_store import MLflowTracker
    from lstm_models.tracking.tracker import NullTracker

    data, _ = _sentiment()
    spec = parse_sweep({"name": "bench-tracking", "task": "classification", "dataset": {"kind": "sentiment"},
                        "search": {"cells": "gru", "units": 32, "depth": 1, "embedding_dim": 32,
                                   "bidirectional": False, "pooling": "last", "dropout": 0.0,
                                   "learning_rate": 0.003},
                        "tuner": {"kind": "random", "max_trials": 1, "max_epochs": 3},
                        "early_stopping": {"patience": 0}})
    times = {"none": [], "mlflow": []}
    after = {"none": [], "mlflow": []}
    inside = []  # seconds spent in the tracker's own calls during the trial
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats + 1):
            for name in ("none", "mlflow"):
                tracker = NullTracker() if name == "none" else _Timed(MLflowTracker(f"sqlite:///{tmp}/m{i}/mlflow.db"))
                marks = {}

                def log(line, marks=marks, tracker=tracker):  # the trial: from the search's first line to its end
                    if line.startswith("sweep "):
                        marks["start"] = time.perf_counter()
                        marks["inside"] = getattr(tracker, "seconds", 0.0)

                def ended(trial, marks=marks, tracker=tracker):
                    marks["trial"] = time.perf_counter()
                    marks["inside"] = getattr(tracker, "seconds", 0.0) - marks["inside"]
                run_sweep(spec, data, tracker, SweepPaths(Path(tmp) / f"exports-{name}-{i}"),
                          hooks=Hooks(log=log, on_trial=ended))
                if i:  # the first round warms up
                    times[name].append(marks["trial"] - marks["start"])
                    after[name].append(time.perf_counter() - marks["trial"])
                    if name == "mlflow":
                        inside.append(marks["inside"] / times[name][-1])
    none, mlflow = statistics.median(times["none"]), statistics.median(times["mlflow"])
    direct = statistics.median(inside)
    print(f"tracking: trial {none:.2f}s without, {mlflow:.2f}s with MLflow: overhead {mlflow / none - 1:.1%}; "
          f"the tracker's own calls {direct:.2%} of the trial", flush=True)
    return {"seconds_without": none, "seconds_with_mlflow": mlflow, "overhead": mlflow / none - 1,
            "tracker_calls_share": direct,
            "after_trials_seconds_without": statistics.median(after["none"]),
            "after_trials_seconds_with_mlflow": statistics.median(after["mlflow"]),
            "what": "one 3-epoch GRU trial on the sentiment default (its nested run, params, per-epoch "
                    "metrics, final metrics)"}


class _Timed:
    """A tracker whose calls add up their own wall time in ``seconds``: the direct cost of
    tracking, which the difference of two noisy trial times cannot resolve."""

    def __init__(self, tracker):
        self._tracker = tracker
        self.seconds = 0.0

    def __getattr__(self, name):
        attr = getattr(self._tracker, name)
        if not callable(attr):
            return attr

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed


# --- serving: the exported SavedModel at batch 1 and batch 256 ------------------------------

def bench_serving(repeats: int, calls: int = 300) -> dict:
    from lstm_models.export import export_model

    data, inputs = _sentiment()
    spec = ModelSpec(task="classification", cell="gru", units=(64,), embedding_dim=64)
    model = serving_model(build_model(spec, inputs), inputs)
    texts = data.part("test")[0].astype(str)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(model, Path(tmp) / "served", {"task": "classification"}, texts[:4])
        loaded = tf.saved_model.load(str(path))
        one = [tf.constant([t]) for t in texts[:calls]]
        for x in one[:20]:
            loaded.serve(x)
        lat = []
        for x in one:
            start = time.perf_counter()
            loaded.serve(x).numpy()
            lat.append(time.perf_counter() - start)
        big = tf.constant(texts[:256])
        seconds = median_time(lambda: loaded.serve(big).numpy(), repeats)
    lat_ms = np.array(lat) * 1000
    out = {"p50_ms_batch1": float(np.percentile(lat_ms, 50)), "p99_ms_batch1": float(np.percentile(lat_ms, 99)),
           "samples_s_batch256": 256 / seconds, "model": "GRU 64, embedding 64, sentiment vocabulary"}
    print(f"serving: p50 {out['p50_ms_batch1']:.2f} ms, p99 {out['p99_ms_batch1']:.2f} ms at batch 1; "
          f"{out['samples_s_batch256']:.0f} samples/s at batch 256", flush=True)
    return out


# --- search efficiency: time each tuner needs to come within 1 point of a long random search -

def bench_search(repeats: int, trials: int, seeds: int, limit: int) -> dict:
    from lstm_models.data import load_dataset
    from lstm_models.search.run import Hooks, SweepPaths, run_sweep
    from lstm_models.tracking.tracker import NullTracker

    raw = {"name": "bench-search", "task": "classification",
           "dataset": {"kind": "sentiment", **({"limit": limit} if limit else {})},
           "tuner": {"max_epochs": 4}, "early_stopping": {"patience": 1}}
    base = parse_sweep(raw)
    data = load_dataset(base.dataset, ROOT / "datasets" / "cache")
    curves: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            for kind, n in (("random", trials), ("bayesian", max(trials // 2, 3)), ("hyperband", max(trials // 2, 3))):
                spec = base.with_overrides(kind=kind, max_trials=n, seed=seed)
                start = time.perf_counter()
                stamps = []

                def ended(trial, stamps=stamps, start=start):
                    if trial.status == "FINISHED":
                        stamps.append((time.perf_counter() - start, trial.objective))
                run_sweep(spec, data, NullTracker(), SweepPaths(Path(tmp) / f"{kind}{seed}"),
                          hooks=Hooks(log=lambda line: None, on_trial=ended))
                curves.setdefault(kind, []).append(stamps)
                print(f"search {kind} seed {seed}: {len(stamps)} trials in {stamps[-1][0]:.0f}s, "
                      f"best {max(v for _, v in stamps):.4f}", flush=True)
    target = statistics.median(max(v for _, v in c) for c in curves["random"]) - 0.01
    out = {"trials_random": trials, "seeds": seeds, "limit": limit or "all", "target_val_accuracy": target,
           "rows": []}
    # A seed that never reaches the target counts as never (infinite time), not as left out.
    medians = {}
    for kind, runs in curves.items():
        reach = [next((t for t, v in _running_best(c) if v >= target), math.inf) for c in runs]
        medians[kind] = statistics.median(reach)
        out["rows"].append({"tuner": kind, "reached": f"{sum(r < math.inf for r in reach)}/{len(runs)}",
                            "seconds_to_target": [None if r == math.inf else r for r in reach],
                            "median_seconds_to_target": None if medians[kind] == math.inf else medians[kind],
                            "median_total_seconds": statistics.median(c[-1][0] for c in runs)})
    for row in out["rows"]:
        mine, rand = medians[row["tuner"]], medians["random"]
        row["vs_random"] = mine / rand if mine < math.inf and rand < math.inf else None
    out["default_tuner"] = base.tuner.kind
    return out


def _running_best(curve):
    best = -1.0
    for t, v in curve:
        best = max(best, v)
        yield t, best


# --- GPU: cuDNN against the generic kernel (only where a GPU is present) ---------------------

def bench_gpu(repeats: int) -> dict:
    if not tf.config.list_physical_devices("GPU"):
        print("gpu: no GPU on this machine; the cuDNN comparison runs where one is present", flush=True)
        return {"gpu": None}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, TEXT["length"], TEXT["embedding"])).astype("float32")
    y = rng.integers(0, 2, size=(2048,))
    ds = _batches(x, y, TEXT["batch"])
    rows = []
    for cell in ("lstm", "gru"):
        times = {}
        for kernel, kw in (("cudnn", {}), ("generic", {"use_cudnn": False})):
            keras.backend.clear_session()
            model = keras.Sequential([keras.Input((TEXT["length"], TEXT["embedding"])),
                                      CELLS[cell](TEXT["units"], **kw), keras.layers.Dense(2, activation="softmax")])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            times[kernel] = median_time(_fit_epoch(model, ds), repeats)
        rows.append({"cell": cell, "cudnn_samples_s": 2048 / times["cudnn"],
                     "generic_samples_s": 2048 / times["generic"], "cudnn_speedup": times["generic"] / times["cudnn"]})
        print(f"gpu {cell}: cuDNN x{times['generic'] / times['cudnn']:.1f} over the generic kernel", flush=True)
    return {"gpu": tf.config.list_physical_devices("GPU")[0].name, "rows": rows}


SECTIONS = ("throughput", "pipeline", "hardware", "tracking", "serving", "search", "gpu")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--search-trials", type=int, default=40)
    parser.add_argument("--search-seeds", type=int, default=3)
    parser.add_argument("--search-limit", type=int, default=0, help="sentences used by the search section (0 = all)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; expected any of {', '.join(SECTIONS)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {"machine": platform.machine(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
               "keras": keras.__version__, "gpu": bool(tf.config.list_physical_devices("GPU"))}
    for section in args.sections or SECTIONS:
        start = time.perf_counter()
        if section == "search":
            result = bench_search(args.repeats, args.search_trials, args.search_seeds, args.search_limit)
        else:
            result = globals()[f"bench_{section}"](args.repeats)
        result.update({"machine": machine, "repeats": args.repeats, "wall_seconds": time.perf_counter() - start})
        path = RESULTS / f"{section}.json"
        if section == "serving" and path.exists():  # benchmarks/serving.py keeps its figures here too
            result.update({k: v for k, v in json.loads(path.read_text()).items() if k == "served"})
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    update_page(RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
