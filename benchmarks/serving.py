"""`make bench-serving`: a registered champion's latency at batch 1, three ways side by side in one run.

For each model (``models:/<name>@champion``, a pyfunc model logged by a sweep), sequential
requests of one input each, after a warm-up, the three taking turns over 10 rounds, to:

(a) the bare SavedModel in-process: ``tf.saved_model.load(export).serve(tf.constant([x]))``;
(b) the MLflow pyfunc model in-process: ``mlflow.pyfunc.load_model(uri).predict([x])``;
(c) ``mlflow models serve`` on 127.0.0.1 (one uvicorn worker): ``POST /invocations`` with
    ``{"inputs": [x]}`` over one persistent connection, the answer read and parsed.

The export is the SavedModel stored inside the registered model (the one (b) and (c) wrap;
``exports/<name>`` may hold a later sweep's model that did not take the champion alias), or the
folder given by ``--export NAME=FOLDER``. Text models get real sentences (the sentiment test
split), forecasting models seeded random windows of the export's lookback. Writes
benchmarks/results/serving.json (key ``served``; `bench.py serving` keeps the rest) and the
table in docs/benchmarks.md.

    python benchmarks/serving.py [--tracking-uri sqlite:///mlflow/mlflow.db] [--models sentiment,sunspots]
                                 [--requests 300] [--warmup 20] [--export sentiment=exports/sentiment]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent  # mlflow runs uvicorn from PATH, as in an activated venv
SWEEP_FIRST = "run `make sweep` first"


class NoChampion(Exception):
    """A model this benchmark cannot measure: not registered, or its champion is not a pyfunc model."""


class NotRegistered(NoChampion):
    """No registered model of that name: skipped when another model is measured."""


def champion(uri: str, name: str) -> dict:
    """``models:/<name>@champion``: its version and the SavedModel folder inside it.

    Raises:
        NotRegistered: no model ``name`` in the registry.
        NoChampion: ``name`` has no champion alias, or the champion is not a pyfunc model of an
            export (stores of older lstm-models registered the bare SavedModel folder).
    """
    import mlflow
    import yaml
    from mlflow.exceptions import MlflowException

    client, model_uri = mlflow.MlflowClient(uri), f"models:/{name}@champion"
    try:
        client.get_registered_model(name)
    except MlflowException:
        raise NotRegistered(f"no registered model {name!r} in {uri}") from None
    try:
        version = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        raise NoChampion(f"{name!r} in {uri} has no champion alias (an older store)") from None
    local = Path(mlflow.artifacts.download_artifacts(model_uri))  # through the URI main() set
    mlmodel = local / "MLmodel"
    flavors = yaml.safe_load(mlmodel.read_text()).get("flavors", {}) if mlmodel.exists() else {}
    saved = flavors.get("python_function", {}).get("artifacts", {}).get("savedmodel")
    if saved is None:
        raise NoChampion(f"{model_uri} in {uri} is not a pyfunc model of an export (an older store)")
    return {"name": name, "uri": model_uri, "version": str(version.version), "export": local / saved["path"]}


def _meta(export: Path) -> dict:
    return json.loads((export / "meta.json").read_text(encoding="utf-8"))


def inputs(meta: dict, n: int) -> list:
    """``n`` single inputs: sentences of the sentiment test split, or seeded random windows."""
    if "class_names" in meta:
        from lstm_models.data import load_dataset
        from lstm_models.spec.sweep import parse_sweep

        spec = parse_sweep({"name": "bench-serving", "task": "classification", "dataset": {"kind": "sentiment"}})
        texts = load_dataset(spec.dataset, ROOT / "datasets" / "cache").part("test")[0].astype(str)
        return [str(texts[i % len(texts)]) for i in range(n)]
    shape = (n, meta["lookback"], len(meta.get("columns", [None])))
    return list(np.random.default_rng(0).uniform(0, 200, shape).astype("float32"))


def latencies(calls: dict, xs: list, warmup: int, rounds: int = 10) -> dict:
    """p50, p99 and mean milliseconds of each of ``calls`` on one input at a time, after ``warmup``
    calls each. The ways take turns, ``rounds`` slices of ``xs`` in rotating order, so that load
    from elsewhere on the machine falls on all of them alike."""
    for call in calls.values():
        for i in range(warmup):
            call(xs[i % len(xs)])
    seconds = {way: [] for way in calls}
    ways = list(calls)
    for r in range(rounds):
        for way in ways[r % len(ways):] + ways[:r % len(ways)]:
            for x in xs[r::rounds]:
                start = time.perf_counter()
                calls[way](x)
                seconds[way].append(time.perf_counter() - start)
    return {way: _stats(np.array(s) * 1000) for way, s in seconds.items()}


def _stats(ms) -> dict:
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def bare_call(export: Path):
    """(a): the SavedModel's ``serve`` on a batch of one."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export))
    return lambda x: loaded.serve(tf.constant([x])).numpy()


def pyfunc_call(model_uri: str):
    """(b): the pyfunc model's ``predict`` on a batch of one (a list of one string, or one window)."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    return lambda x: model.predict([x] if isinstance(x, str) else np.asarray(x)[None])


def _payload(x) -> bytes:
    return json.dumps({"inputs": [x if isinstance(x, str) else x.tolist()]}).encode()


def http_call(connection: http.client.HTTPConnection):
    """(c): ``POST /invocations`` of one input on ``connection``, the answer read and parsed."""
    def call(x):
        connection.request("POST", "/invocations", _payload(x), {"Content-Type": "application/json"})
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"POST /invocations answered {answer.status}: {body[:500]!r}")
        return json.loads(body)["predictions"]
    return call


@contextlib.contextmanager
def model_server(model_uri: str, tracking_uri: str, log: Path):
    """``mlflow models serve`` in its own process group, until it answers /ping; stopped after."""
    from lstm_models.tracking.server import free_port

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:  # a file, not a pipe nobody reads: a full pipe stalls the server
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_ping(proc, port, log)
        yield port, command
    finally:
        _stop(proc)


def _wait_for_ping(proc: subprocess.Popen, port: int, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"mlflow models serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    raise SystemExit(f"mlflow models serve did not answer /ping within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def measure(model: dict, tracking_uri: str, n: int, warmup: int, folder: Path) -> dict:
    """The three latencies of one champion, taking turns on the same inputs."""
    meta = _meta(model["export"])
    xs = inputs(meta, n)
    row = {"model": model["name"], "version": model["version"], "task": meta["task"], "cell": meta.get("cell"),
           "trial": meta.get("trial"), "export": str(model["export"]),
           "input": "one sentence" if "class_names" in meta else f"one window {tuple(xs[0].shape)}"}
    calls = {"bare": bare_call(model["export"]), "pyfunc": pyfunc_call(model["uri"])}
    with model_server(model["uri"], tracking_uri, folder / f"serve-{model['name']}.log") as (port, command):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            row.update(latencies({**calls, "http": http_call(connection)}, xs, warmup))
        finally:
            connection.close()
    row["server_command"] = " ".join(["mlflow", *command[1:-2]])  # without the port
    for way in ("pyfunc", "http"):
        for stat in ("p50", "p99"):
            row[f"{way}_vs_bare_{stat}"] = row[way][f"{stat}_ms"] / row["bare"][f"{stat}_ms"]
    print(_line(row), flush=True)
    return row


def _line(row: dict) -> str:
    ways = ", ".join(f"{way} p50 {row[way]['p50_ms']:.2f} ms p99 {row[way]['p99_ms']:.2f} ms"
                     for way in ("bare", "pyfunc", "http"))
    return f"serving {row['model']} v{row['version']}: {ways}; served / bare p50 {row['http_vs_bare_p50']:.1f}x"


def _champions(uri: str, names: list[str], exports: dict[str, str]) -> list[dict]:
    """The measurable champions; a model not registered at all is skipped if another one is."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise NoChampion(f"no tracking store at {uri}")  # and none made by asking it
    found, missing = [], []
    for name in names:
        try:
            model = champion(uri, name)
        except NotRegistered as e:
            missing.append(str(e))
            continue
        if name in exports:
            model["export"] = Path(exports[name]).resolve()
        found.append(model)
    if not found:
        raise NoChampion(missing[0] if missing else "no model named (--models)")
    for why in missing:
        print(f"serving: skipped, {why}", file=sys.stderr)
    return found


def _save(served: dict) -> None:
    """Into serving.json beside bench.py's serving section, then the tables of docs/benchmarks.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "serving.json"
    result = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    result["served"] = served
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report_bench import update_page

    update_page(RESULTS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow/mlflow.db")
    parser.add_argument("--models", default="sentiment,sunspots", help="registered model names, comma-separated")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per model and way")
    parser.add_argument("--warmup", type=int, default=20, help="calls before the measured ones")
    parser.add_argument("--export", action="append", default=[], metavar="NAME=FOLDER",
                        help="the SavedModel to load bare (default: the copy inside the registered model)")
    args = parser.parse_args(argv)
    exports = dict(e.split("=", 1) for e in args.export)
    start = time.perf_counter()
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)  # models:/ URIs resolve through it (else ./mlflow.db)
    try:
        models = _champions(args.tracking_uri, [m for m in args.models.split(",") if m], exports)
    except NoChampion as e:
        print(f"serving: {e}; {SWEEP_FIRST}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lstm-models-serving-") as tmp:
        rows = [measure(m, args.tracking_uri, args.requests, args.warmup, Path(tmp)) for m in models]
    _save({"rows": rows, "requests": args.requests, "warmup": args.warmup, "tracking_uri": args.tracking_uri,
           "machine": _machine(), "wall_seconds": time.perf_counter() - start})
    return 0


def _machine() -> dict:
    from importlib import metadata

    return {"machine": platform.machine(), "cpus": os.cpu_count(),
            **{p: metadata.version(p) for p in ("tensorflow", "mlflow", "uvicorn")}}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
