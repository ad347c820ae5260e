"""Sweeps through the CLI as a user runs them, and their best model as a real MLflow model.

One tiny text sweep and one tiny forecasting sweep (with the override flags) run through the CLI
into a real SQLite store; the exports are reloaded, the registered champion is loaded with
``mlflow.pyfunc`` and served by ``mlflow models serve`` (``make serve``), and each answers what
``tf.saved_model.load(export).serve`` answers.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from lstm_models.export import read_meta
from lstm_models.tracking import mlflow_pyfunc, mlflow_registry
from lstm_models.tracking.server import free_port

from conftest import CACHE, ROOT, run_cli, tiny_sentiment_spec, tiny_series_spec, write_spec

pytestmark = pytest.mark.slow  # sweeps, SavedModels and model servers

TEXTS = ["a wonderful, moving film", "dull and lifeless", "not bad at all"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Both tiny sweeps in one store: {name: (completed CLI run, export folder)}, and the URI."""
    tmp = tmp_path_factory.mktemp("served")
    uri = f"sqlite:///{tmp}/mlflow/mlflow.db"
    done = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")  # tiny trials last a few seconds
        # The cell verdict: the spec asks for matched sizes, the flag for 2 seeds.
        done["tiny-sentiment"] = _sweep(tmp, uri, {**tiny_sentiment_spec(), "verdict": {"match": "params"}},
                                        "--verdict-seeds", "2")
        done["tiny-sunspots"] = _sweep(tmp, uri, tiny_series_spec(), "--max-trials", "1", "--tuner", "bayesian",
                                       "--seed", "5")
    return done, uri, tmp


def _sweep(tmp: Path, uri: str, spec: dict, *flags: str):
    run = run_cli("sweep", str(write_spec(tmp, spec, f"{spec['name']}.yaml")), "--tracking-uri", uri,
                  "--output", str(tmp / "exports"), "--cache-dir", str(CACHE), *flags, cwd=tmp)
    assert run.returncode == 0, run.stderr[-3000:]
    return run, tmp / "exports" / spec["name"]


def _saved_model(export: Path, batch) -> np.ndarray:
    loaded = tf.saved_model.load(str(export))  # keep a reference while calling it
    return loaded.serve(tf.constant(batch)).numpy()


def _windows(export: Path, n: int = 3) -> np.ndarray:
    lookback = read_meta(export)["lookback"]
    return (40 + 30 * np.sin(np.arange(n * lookback) / 3)).reshape(n, lookback, 1).astype("float32")


def test_sentiment_sweep_end_to_end(swept):
    done, uri, tmp = swept
    run, export = done["tiny-sentiment"]
    out = run.stdout
    assert "[trial 1/2]" in out and "[trial 2/2]" in out and "epoch 1/1" in out
    assert "Leaderboard tiny-sentiment" in out and "test_accuracy" in out
    assert f"SavedModel: {export}" in out
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny-sentiment").experiment_id])
    runs = [r for r in runs if r.data.tags.get("verdict") != "true"]  # the verdict's seed runs: see below
    assert len(runs) == 3 and sum("mlflow.parentRunId" in r.data.tags for r in runs) == 2
    probs = _saved_model(export, ["a wonderful, moving film", "dull and lifeless"])
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert read_meta(export)["class_names"] == ["negative", "positive"]


def test_forecast_sweep_override_flags(swept):
    done, uri, _ = swept
    run, export = done["tiny-sunspots"]
    assert "bayesian search" in run.stdout and "[trial 1/1]" in run.stdout
    client = MlflowClient(uri)
    parent = [r for r in client.search_runs([client.get_experiment_by_name("tiny-sunspots").experiment_id])
              if "mlflow.parentRunId" not in r.data.tags][0]
    assert parent.data.params["tuner.max_trials"] == "1" and parent.data.tags["seed"] == "5"
    window = np.full((1, read_meta(export)["lookback"], 1), 50.0, dtype="float32")
    forecast = _saved_model(export, window)
    assert forecast.shape == (1, 1) and np.isfinite(forecast).all()


def test_the_sweep_prints_the_model_uri_and_the_serving_command(swept):
    done, uri, _ = swept
    out = done["tiny-sentiment"][0].stdout.splitlines()
    registered = [line for line in out if line.startswith("Registered: ")]
    assert registered == ["Registered: models:/tiny-sentiment/1 (now models:/tiny-sentiment/latest); "
                          "champion: version 1, the first of this model"]
    assert (f"Serve models:/tiny-sentiment@champion: make serve MODEL=tiny-sentiment TRACKING_URI={uri}   "
            f"(MLFLOW_TRACKING_URI={uri} mlflow models serve -m models:/tiny-sentiment@champion --env-manager local "
            "--host 127.0.0.1 --port 5002)") in out


def test_pyfunc_from_the_champion_answers_like_the_saved_model(swept, monkeypatch):
    done, uri, _ = swept
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    text_export, series_export = done["tiny-sentiment"][1], done["tiny-sunspots"][1]
    model = mlflow.pyfunc.load_model("models:/tiny-sentiment@champion")
    probs = model.predict(pd.DataFrame({"text": TEXTS}))
    assert list(probs.columns) == ["negative", "positive"]
    np.testing.assert_allclose(probs.to_numpy(), _saved_model(text_export, TEXTS), rtol=1e-5, atol=1e-6)
    assert str(model.metadata.get_input_schema()) == "[string (required)]"
    reqs = (Path(mlflow.artifacts.download_artifacts("models:/tiny-sentiment@champion")) / "requirements.txt").read_text()
    assert f"tensorflow=={tf.__version__}" in reqs.split() and f"mlflow=={mlflow.__version__}" in reqs.split()

    windows = _windows(series_export)
    forecast = mlflow.pyfunc.load_model("models:/tiny-sunspots@champion").predict(windows)
    np.testing.assert_allclose(forecast, _saved_model(series_export, windows), rtol=1e-5, atol=1e-4)
    assert forecast.shape == (3, 1) and forecast.min() > 1.0  # sunspot counts in their own units, not z-scores


def _serve(command: list[str], env: dict, cwd: Path, port: int):
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode()[-3000:])
            time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("the model server did not answer /ping within 180 s")


def _invoke(port: int, payload: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.stdout.close()


def test_make_serve_and_mlflow_models_serve_answer_http_like_the_saved_model(swept):
    done, uri, tmp = swept
    bin_dir = str(Path(sys.executable).parent)  # mlflow runs uvicorn from PATH, as in an activated venv
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    port = free_port()
    proc = _serve(["make", "-s", "-C", str(ROOT), "serve", "MODEL=tiny-sentiment", f"TRACKING_URI={uri}",
                   f"SERVE_PORT={port}"], env, tmp, port)
    try:
        answer = _invoke(port, {"inputs": TEXTS})["predictions"]
    finally:
        _stop(proc)
    served = np.array([[row["negative"], row["positive"]] for row in answer])
    np.testing.assert_allclose(served, _saved_model(done["tiny-sentiment"][1], TEXTS), rtol=1e-5, atol=1e-6)

    series_export = done["tiny-sunspots"][1]
    windows = _windows(series_export, 2)
    port = free_port()
    proc = _serve(["mlflow", "models", "serve", "-m",
                   "models:/tiny-sunspots@champion", "--env-manager", "local", "--host", "127.0.0.1", "--port",
                   str(port)], env, tmp, port)
    try:
        answer = _invoke(port, {"inputs": windows.tolist()})["predictions"]
    finally:
        _stop(proc)
    np.testing.assert_allclose(np.array(answer), _saved_model(series_export, windows), rtol=1e-5, atol=1e-4)


def test_runs_describe_their_data_their_models_and_their_leaderboard(swept):
    done, uri, _ = swept
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny-sentiment")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags and "verdict" not in r.data.tags]
    seeded = [r for r in runs if r.data.tags.get("verdict") == "true"]
    for run in [parent, *trials, *seeded]:
        (found,) = run.inputs.dataset_inputs
        tags = {t.key: t.value for t in found.tags}
        assert found.dataset.name == "sentiment" and found.dataset.source.startswith("sentiment ")
        assert json.loads(found.dataset.schema)["mlflow_colspec"] == [{"name": "text", "type": "string"},
                                                                      {"name": "label", "type": "long"}]
        assert tags["mlflow.data.context"] == "training"
        assert int(tags["train_size"]) + int(tags["val_size"]) + int(tags["test_size"]) == 400
    assert len({r.inputs.dataset_inputs[0].dataset.digest for r in [parent, *trials]}) == 1
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**tiny-sentiment**: random search over ") and "| cell | trial | val_accuracy |" in note
    assert "| majority |" in note and "\nThe best recurrent model (" in note
    assert note.splitlines()[-1] == parent.data.tags["cell_verdict_matched"]
    # One logged model per cell, each made by that cell's best trial; the exported one is the parent's too.
    models = client.search_logged_models(experiment_ids=[exp.experiment_id])
    cells = {t.data.tags["cell"] for t in trials if t.info.status == "FINISHED"}
    assert sorted(m.name for m in models) == sorted(f"tiny-sentiment-{c}" for c in cells)
    by_run = {m.source_run_id: m for m in models}
    best_run = parent.data.tags["best_trial"]
    best = next(t for t in trials if t.info.run_name == best_run)
    assert [o.model_id for o in parent.outputs.model_outputs] == [by_run[best.info.run_id].model_id]
    champion = client.get_model_version_by_alias("tiny-sentiment", "champion")
    assert champion.source == f"models:/{by_run[best.info.run_id].model_id}" and champion.run_id == best.info.run_id
    # System metrics: every trial that trained for a couple of seconds has CPU and memory samples.
    sampled = [t for t in trials if any(k.startswith("system/cpu_utilization") for k in t.data.metrics)]
    assert sampled and all("system/system_memory_usage_megabytes" in t.data.metrics for t in sampled)


def test_the_cell_verdict_of_a_cli_sweep(swept, tmp_path):
    done, uri, _ = swept
    out = done["tiny-sentiment"][0].stdout
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny-sentiment").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    cells = sorted({r.data.tags["cell"] for r in runs if "trial_id" in r.data.tags and r.info.status == "FINISHED"})
    assert len(cells) == 2  # two trials, one per cell (balanced)
    winner = next(r for r in runs if r.info.run_name == parent.data.tags["best_trial"]).data.tags["cell"]
    # Each cell's best configuration with 2 seeds, then the other cell at the winner's size.
    seeded = [r for r in runs if r.data.tags.get("verdict") == "true"]
    assert sorted((r.data.tags["verdict_kind"], r.data.tags["cell"], r.data.tags["seed"]) for r in seeded) == sorted(
        [("seeds", c, s) for c in cells for s in ("10007", "10008")]
        + [("matched", c, s) for c in cells if c != winner for s in ("10007", "10008")])
    assert all(r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parent.info.run_id
               and 0.0 <= r.data.metrics["test_accuracy"] <= 1.0 for r in seeded)
    m = parent.data.metrics
    for cell in cells:
        scores = [r.data.metrics["test_accuracy"] for r in seeded
                  if r.data.tags["cell"] == cell and r.data.tags["verdict_kind"] == "seeds"]
        assert m[f"test_accuracy_{cell}_mean"] == pytest.approx(np.mean(scores))
        assert m[f"test_accuracy_{cell}_ci_low"] <= m[f"test_accuracy_{cell}_mean"] <= m[f"test_accuracy_{cell}_ci_high"]
        assert abs(m[f"params_{cell}_matched"] - m[f"params_{winner}"]) <= 0.10 * m[f"params_{winner}"]
    assert m["verdict_seconds"] > 0
    # Printed: both tables, their sentences (also the parent's tags), and the cost.
    lines = out.splitlines()
    first = lines.index(next(l for l in lines if l.startswith("Verdict (each cell's best configuration, trained "
                                                                    "with seeds 10007, 10008, early-stopped on val")))
    assert lines[first + 1].split() == ["cell", "configuration", "params", "test_accuracy", "mean", "95%", "CI",
                                        "vs", "best", "95%", "CI", "p"]
    assert lines[first + 2].split()[0] in cells and "(best)" in lines[first + 2]
    assert lines[first + 4].strip() == parent.data.tags["cell_verdict"]
    assert lines[first + 5].startswith("Verdict (every cell at the winner's size, about ")
    assert lines[first + 9].strip() == parent.data.tags["cell_verdict_matched"]
    assert parent.data.tags["cell_verdict"].endswith("paired bootstrap over the test examples and seeds, "
                                                     f"2 seeds x {int(parent.data.tags['test_size'])} test examples.")
    assert lines[first + 10] == f"The verdict took {m['verdict_seconds']:.0f}s."
    csv_path = client.download_artifacts(parent.info.run_id, "verdict.csv", str(tmp_path))
    assert len(Path(csv_path).read_text().splitlines()) == 1 + 2 * len(cells) * 2
    assert Path(client.download_artifacts(parent.info.run_id, "verdict.png", str(tmp_path))).stat().st_size > 10_000


def test_the_champion_moves_only_for_a_better_score_on_the_same_split(swept):
    done, uri, _ = swept
    client = MlflowClient(uri)
    held = client.get_model_version_by_alias("tiny-sentiment", "champion")
    version = str(held.version)  # an int from SQLite, a string from a server
    tags = {k: held.tags[k] for k in mlflow_registry.SCORE_TAGS}
    assert tags["task"] == "classification" and tags["metric"] == "accuracy" and tags["direction"] == "max"
    run_id, model_id = held.run_id, held.source.removeprefix("models:/")
    worse = {**tags, "value": str(float(tags["value"]) - 0.01)}
    answer = mlflow_registry.register(uri, client, "tiny-sentiment", model_id, run_id, worse)
    assert answer["champion"] == version and answer["version"] == str(int(version) + 1)
    assert answer["message"].startswith(f"champion stays version {version}: its test accuracy ")
    other_split = {**tags, "value": "1.0", "test_digest": "0123456789abcdef"}
    answer = mlflow_registry.register(uri, client, "tiny-sentiment", model_id, run_id, other_split)
    assert answer["champion"] == version and "another test split" in answer["message"]
    better = {**tags, "value": str(float(tags["value"]) + 0.01)}
    answer = mlflow_registry.register(uri, client, "tiny-sentiment", model_id, run_id, better)
    assert answer["champion"] == answer["version"]
    assert str(client.get_model_version_by_alias("tiny-sentiment", "champion").version) == answer["version"]
    assert str(client.get_latest_versions("tiny-sentiment")[0].version) == answer["version"]  # models:/<name>/latest


def test_a_second_sweep_takes_the_champion_only_if_it_scores_better(swept):
    done, uri, tmp = swept
    client = MlflowClient(uri)
    before = client.get_model_version_by_alias("tiny-sunspots", "champion")
    spec = tiny_series_spec(max_trials=1, seed=11)
    run = run_cli("sweep", str(write_spec(tmp, spec, "again.yaml")), "--tracking-uri", uri, "--fresh",
                  "--output", str(tmp / "exports-again"), "--cache-dir", str(CACHE), cwd=tmp)
    assert run.returncode == 0, run.stderr[-3000:]
    new = client.get_model_version("tiny-sunspots", str(int(before.version) + 1))
    assert new.tags["test_digest"] == before.tags["test_digest"]  # the same test split
    wins = float(new.tags["value"]) < float(before.tags["value"])  # rmse: lower is better
    after = client.get_model_version_by_alias("tiny-sunspots", "champion")
    assert str(after.version) == str(new.version if wins else before.version)
    line = next(line for line in run.stdout.splitlines() if line.startswith("Registered: "))
    assert (f"champion: version {new.version}," if wins else f"champion stays version {before.version}:") in line


def test_the_code_stored_with_each_model_names_its_artifacts_as_the_logger_does():
    assert (mlflow_pyfunc.SAVEDMODEL, mlflow_pyfunc.TEXT_COLUMN) == (mlflow_registry.SAVEDMODEL,
                                                                    mlflow_registry.TEXT_COLUMN)


def test_logging_a_model_leaves_mlflows_global_tracking_uri_as_it_found_it(monkeypatch, tmp_path):
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-the-environment.db")
    with mlflow_registry.tracking_uri(f"sqlite:///{tmp_path}/store.db"):
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/store.db"
    assert utils._tracking_uri is None and os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///from-the-environment.db"
    assert mlflow.get_tracking_uri() == "sqlite:///from-the-environment.db"  # the variable rules again
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with mlflow_registry.tracking_uri(f"sqlite:///{tmp_path}/store.db"):
        pass
    assert utils._tracking_uri is None and "MLFLOW_TRACKING_URI" not in os.environ
