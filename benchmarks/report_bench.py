"""Turns benchmarks/results/*.json into the benchmark tables of docs/benchmarks.md (between markers)."""

from __future__ import annotations

import json
from pathlib import Path

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
PAGE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def _load(results: Path, name: str):
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _f(x, spec=".0f"):
    return "-" if x is None else format(x, spec)


def tables(results: Path) -> str:
    out = []
    t = _load(results, "throughput")
    if t:
        m = t["machine"]
        out += [f"Measured on {m['cpus']} CPU cores, TensorFlow {m['tensorflow']}, Keras {m['keras']}, "
                f"GPU: {'yes' if m['gpu'] else 'no'}; medians of {t['repeats']} runs after a warm-up.", "",
                "**Training throughput** (samples/s; text: vocabulary 20k, sequence 200, embedding 64, units 64, "
                f"batch 64; series: window 64, units 64, batch 64, and window {t['shapes']['short_window']}, "
                "the sunspots sweep's middle lookback: built alone, a model unrolls windows up to 32 steps; in a sweep, only when it may train 4,000 batches or more; "
                "the three models of a row read the same cached batches and take turns, epoch by epoch)", "",
                "| task | cell | bare keras-io script | ours (defaults) | ours / bare | ours with XLA "
                "(`tuner.jit_compile: true`) | XLA / defaults |", "|---|---|---|---|---|---|---|"]
        for r in t["rows"]:
            out.append(f"| {r['task']} | {r['cell']} | {_f(r['bare_samples_s'])} | {_f(r['ours_samples_s'])} | "
                       f"{r['ours_vs_bare']:.2f}x | {_f(r['ours_xla_samples_s'])} | {r['xla_vs_ours']:.2f}x |")
        out.append("")
    p = _load(results, "pipeline")
    if p:
        padded = f"padded to {p['fixed_length']}"
        names = {"bare": f"bare: {padded}, no mask", "fixed_masked": f"{padded}, masked",
                 "ours": f"ours: buckets {p['boundaries']}, masked",
                 "ours_autotuned": "ours, tf.data autotuner on"}
        out += [f"**Input pipeline and mask**, sentiment default (samples/s of an epoch with its validation, median of "
                f"epochs 2-{p['epochs']}, the pipelines taking turns; best validation accuracy in {p['epochs']} epochs; "
                "one 64-unit layer, same initial weights). The bare model reads the padding.", "",
                "| cell | " + " | ".join(names.values()) + " | ours / bare | ours / padded and masked | "
                "ours / autotuner on | slowest epoch: ours, autotuner on (s) |",
                "|---|" + "---|" * (len(names) + 4)]
        for r in p["rows"]:
            out.append(f"| {r['cell']} | " + " | ".join(f"{_f(r[k]['samples_s'])} ({r[k]['val_accuracy']:.3f})"
                                                      for k in names)
                       + f" | {r['ours_vs_bare']:.2f}x | {r['ours_vs_fixed_masked']:.2f}x | {r['ours_vs_autotuned']:.2f}x | "
                         f"{r['ours']['slowest_epoch_s']:.2f}, {r['ours_autotuned']['slowest_epoch_s']:.2f} |")
        out.append("")
        out += ["**XLA in a real trial** (same data, bucketed, with validation; seconds): the first epoch "
                "holds one compile per batch shape, which is why `jit_compile` is off by default.", "",
                "| cell | epoch 1 | later epochs | epoch 1 with XLA | later epochs with XLA | "
                "epochs before XLA pays |", "|---|---|---|---|---|---|"]
        out += [f"| {r['cell']} | {r['first_epoch_s']:.1f} | {r['epoch_s']:.2f} | {r['xla_first_epoch_s']:.1f} | "
                f"{r['xla_epoch_s']:.2f} | {_f(r['xla_break_even_epochs'], '.0f')} |" for r in p["rows"]]
        out.append("")
    h = _load(results, "hardware")
    if h:
        out += [f"**Distance to the hardware**: a 2048x2048 float32 matmul runs at {h['matmul_gflops']:.0f} GFLOP/s.", "",
                "| LSTM units | training GFLOP/s (analytic, matmuls only) | fraction of matmul |", "|---|---|---|"]
        out += [f"| {r['units']} | {r['lstm_flops'] / 1e9:.1f} | {r['fraction_of_matmul']:.1%} |" for r in h["rows"]]
        out.append("")
        kinds = list(h["rows"][0]["profile"]["share"])
        out += ["Where that training time goes (TensorFlow profiler, one epoch; share of the executor's busy "
                "time):", "",
                "| LSTM units | dispatches per time step | us per dispatch | " + " | ".join(kinds) + " |",
                "|---|---|---|" + "---|" * len(kinds)]
        out += [f"| {r['units']} | {r['profile']['dispatches_per_step']:.0f} | "
                f"{r['profile']['mean_dispatch_us']:.1f} | "
                + " | ".join(f"{r['profile']['share'][k]:.0%}" for k in kinds) + " |" for r in h["rows"]]
        out.append("")
    tr = _load(results, "tracking")
    if tr:
        out += [f"**Tracking overhead**: {tr['what']}: {tr['seconds_without']:.2f} s without tracking, "
                f"{tr['seconds_with_mlflow']:.2f} s with MLflow (SQLite): **{tr['overhead']:+.1%}** (time inside "
                f"the tracker's own calls: **{tr['tracker_calls_share']:.2%}** of the trial). After the trials "
                f"(test scoring, baselines, export, and with MLflow the artifacts, plot and registry): "
                f"{tr['after_trials_seconds_without']:.1f} s without, {tr['after_trials_seconds_with_mlflow']:.1f} s "
                f"with.", ""]
    s = _load(results, "serving")
    if s:
        out += [f"**Serving** the exported SavedModel ({s['model']}): batch 1 p50 {s['p50_ms_batch1']:.2f} ms, "
                f"p99 {s['p99_ms_batch1']:.2f} ms; batch 256: {s['samples_s_batch256']:.0f} samples/s.", ""]
    out += _served(s.get("served") if s else None)
    se = _load(results, "search")
    if se:
        out += [f"**Search efficiency** on the sentiment default ({se['limit']} sentences): seconds until the best "
                f"val accuracy is within 1 point of what a {se['trials_random']}-trial random search finds "
                f"(target {se['target_val_accuracy']:.4f}); {se['seeds']} seeds, medians.", "",
                "| tuner | reached | median seconds to target | vs random | median total seconds |",
                "|---|---|---|---|---|"]
        out += [f"| {r['tuner']}{' (default)' if r['tuner'] == se['default_tuner'] else ''} | {r['reached']} | "
                f"{_f(r['median_seconds_to_target'])} | {_f(r['vs_random'], '.2f')} | "
                f"{_f(r['median_total_seconds'])} |" for r in se["rows"]]
        out += ["", "A seed that never reaches the target counts as never; random search runs "
                f"{se['trials_random']} trials, Bayesian and Hyperband half as many.", ""]
    g = _load(results, "gpu")
    if g and g.get("gpu"):
        out += [f"**GPU** ({g['gpu']}): cuDNN vs the generic kernel", "", "| cell | cuDNN | generic | speed-up |",
                "|---|---|---|---|"]
        out += [f"| {r['cell']} | {_f(r['cudnn_samples_s'])} | {_f(r['generic_samples_s'])} | "
                f"{r['cudnn_speedup']:.1f}x |" for r in g["rows"]]
        out.append("")
    elif g is not None:
        out += ["**GPU**: none on the machine that ran this; `make bench` measures cuDNN against the generic "
                "kernel where a GPU is present.", ""]
    out += _workers(_load(results, "workers"))
    return "\n".join(out).rstrip() + "\n"


def _served(s) -> list[str]:
    """The champion served three ways (benchmarks/serving.py): SavedModel, pyfunc, mlflow models serve."""
    if not s:
        return []
    m = s["machine"]
    out = [f"**Serving a registered champion** (`models:/<name>@champion`) at batch 1: milliseconds per request, "
           f"p50 / p99 / mean of {s['requests']} sequential requests after {s['warmup']} warm-up calls, the three "
           f"taking turns in 10 rounds (store `{s['tracking_uri']}`); TensorFlow "
           f"{m['tensorflow']}, MLflow {m['mlflow']}, one uvicorn worker, client and server on the same "
           f"{m['cpus']} cores. Over HTTP: one persistent connection to 127.0.0.1, the client builds the JSON "
           "request and parses the answer.", "",
           "| model | input | SavedModel `serve` in-process | pyfunc `predict` in-process | `mlflow models serve` over "
           "HTTP | pyfunc / SavedModel (p50) | HTTP / SavedModel (p50, p99) |", "|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        ways = " | ".join(f"{r[w]['p50_ms']:.2f} / {r[w]['p99_ms']:.2f} / {r[w]['mean_ms']:.2f}"
                          for w in ("bare", "pyfunc", "http"))
        out.append(f"| {r['model']} v{r['version']} ({r['trial'].split(' ', 1)[-1]}) | {r['input']} | {ways} | "
                   f"{r['pyfunc_vs_bare_p50']:.1f}x | {r['http_vs_bare_p50']:.1f}x, {r['http_vs_bare_p99']:.1f}x |")
    return out + [""]


def best_test(parent) -> dict:
    """A sweep's parent run -> its exported model's test metric (accuracy or RMSE) and value."""
    key = "test_accuracy_best" if "test_accuracy_best" in parent.data.metrics else "test_rmse_best"
    return {"test_metric": key.removeprefix("test_").removesuffix("_best"), "test_value": parent.data.metrics[key]}


def defaults_table(d) -> str:
    """`make sweep`'s specs in one process and with 2 workers (benchmarks/workers.py, part defaults)."""
    rows = {(r["spec"], r["workers"]): r for r in d["rows"]}
    out = ["| sweep | one process | 2 workers | 2 workers / one process | exported: one process; 2 workers |",
           "|---|---:|---:|---:|---|"]
    for spec in dict.fromkeys(r["spec"] for r in d["rows"]):
        one, two = rows[(spec, 0)], rows[(spec, 2)]
        ratio = one["wall_seconds"] / two["wall_seconds"]
        says = f"{ratio:.2f}x faster" if ratio >= 1 else f"{ratio:.2f}x (slower)"
        models = "; ".join(f"{r['exported'].split(' (')[0]}, test {r['test_metric']} "
                           f"{r['test_value']:.4f}" for r in (one, two))
        out.append(f"| `{spec}` | {one['wall_seconds']:.0f} s | {two['wall_seconds']:.0f} s | {says} | {models} |")
    total = [sum(r["wall_seconds"] for r in d["rows"] if r["workers"] == w) for w in (0, 2)]
    out.append(f"| both (`make sweep`) | {total[0]:.0f} s | {total[1]:.0f} s | {total[0] / total[1]:.2f}x | |")
    out += ["", "Each sweep's own account of its time, one process then 2 workers:", "", "```"]
    out += [f"{r['label']}: {r['time_line']}" for r in d["rows"]] + ["```"]
    return "\n".join(out) + "\n"


def _workers(w) -> list[str]:
    """The workers section (benchmarks/workers.py): make sweep's specs in one process and with 2
    workers, 1 vs 2 workers, PostgreSQL vs SQLite, the simulation."""
    if not w:
        return []
    out = []
    if w.get("defaults"):
        out += [f"**`make sweep`'s specs** on this machine's {w.get('cpus', '?')} cores, each in one process and "
                "with 2 local workers, side by side in one run (the whole command, verdict included):", "",
                defaults_table(w["defaults"]).rstrip(), ""]
    s = w.get("sweeps")
    if s:
        out += [f"**Workers** on this machine's {w.get('cpus', '?')} cores, `{s['spec']}` run three times side by side in one "
                "run (trials per hour: finished trials over the span from the first trial run opened to the last "
                "closed)", "", "| run | finished / runs | search span | trials per hour | mean trial | wall |",
                "|---|---|---|---|---|---|"]
        out += [f"| {r['label']} | {r['finished']} / {r['runs']} | {r['search_seconds']:.0f} s | "
                f"{r['trials_per_hour']:.0f} | {r['mean_trial_seconds']:.1f} s | {r['wall_seconds']:.0f} s |"
                for r in s["rows"]]
        out += ["", f"2 workers / 1 worker: **{s['speedup_2_workers']:.2f}x** trials per hour. The PostgreSQL "
                f"server costs {s['postgres_seconds_per_trial']:+.1f} s per trial against SQLite (search span per "
                "run).", ""]
    m = w.get("simulation")
    if not m:
        return out + ["**Simulation** (16 workers on 127.0.0.1): not measured yet; `make bench-workers` runs it.", ""]
    out += [f"**Simulation**: {m['workers']} worker processes on 127.0.0.1, trials of trivial size, "
            f"{m['seconds']:.0f} s each. The chief's oracle (one gRPC thread) handed out "
            f"**{m['oracle_trials_per_s']:.0f} trials/s** ({m['oracle_calls_per_trial']} calls each: ask, "
            f"3 epochs, a heartbeat, end). The tracking store took **{m['postgres_server_runs_per_s']:.1f} "
            f"runs/s** through the MLflow server on PostgreSQL and {m['sqlite_runs_per_s']:.1f} runs/s on SQLite "
            f"(each run: params, 3 epochs of metrics, a {m['checkpoint_mb']:g} MB checkpoint, its record).", ""]
    b = w.get("bottleneck_workers")
    if b:
        out += [f"With a real trial of the default sentiment sweep lasting {b['trial_seconds']:.0f} s per worker, the "
                f"chief saturates at about **{b['chief']:.0f} workers**, the PostgreSQL tracking server at about "
                f"**{b['postgres_server']:.0f}**, SQLite at about {b['sqlite']:.0f} (measured here, with the workers "
                "on the same 2 cores as the servers: on separate hosts the servers get more).", ""]
    return out


def replace_between(page: Path, start: str, end: str, body: str) -> bool:
    """Put ``body`` between the ``start`` and ``end`` markers of ``page``; False when it has none."""
    text = page.read_text(encoding="utf-8")
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    page.write_text(f"{head}{start}\n{body}{end}{tail}", encoding="utf-8")
    return True


def update_page(results: Path, page: Path = PAGE) -> None:
    """The benchmark tables into ``page``, docs/benchmarks.md by default.

    A page without the markers gets a "The tables" section at its end; a missing page is created.
    """
    text = page.read_text(encoding="utf-8") if page.exists() else "# Speed and benchmarks\n"
    if START not in text:
        page.write_text(text.rstrip() + f"\n\n## The tables\n\n{START}\n{END}\n", encoding="utf-8")
    replace_between(page, START, END, tables(results))
    print(f"updated the benchmark tables in {page}")
