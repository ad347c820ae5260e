"""The tracker on MLflow. A sweep is a parent run, each trial a nested run.

`MLflowTracker` implements `lstm_models.tracking.tracker.Tracker` on a real store through
`MlflowClient` (no global active run, so two sweeps in one process, or two processes on one
store, do not mix).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from lstm_models.errors import ConfigError, check_writable
from lstm_models.interrupt import Deferral
from lstm_models.tracking.mlflow_client import StoreLink, default_artifact_root, make_client, sqlite_path, store_missing
from lstm_models.tracking.tracker import Step

PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM_LENGTH = 6000
SYSTEM_METRICS_SECONDS = 2  # a trial's CPU, memory (and GPU) sample interval


class MLflowTracker:
    """Writes sweeps and trials to an MLflow tracking store.

    Args:
        uri: the tracking URI, e.g. ``sqlite:///mlflow/mlflow.db`` or ``http://127.0.0.1:5000``.
        artifact_root: where new experiments keep artifacts (default: beside a SQLite file).
        guard: the process's interrupts (`lstm_models.interrupt.Deferral`), held by SQLite writes
            and while MLflow copies artifacts or logs a model: raised inside its thread pool,
            between starting a worker thread and recording it, one left a thread that Python's
            exit waited for forever (a chief hung after Ctrl-C, 1 in 20 tries).
    """

    enabled = True

    def __init__(self, uri: str, artifact_root: str | None = None, guard=None):
        self.uri, self.guard = uri, guard or Deferral()
        self.link = StoreLink(uri)  # a server gone: `TrackingLost`, at once after the first time
        self.artifact_root = artifact_root or default_artifact_root(uri)
        self._client = None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self._monitors: dict[str, Any] = {}  # run id -> its system metrics monitor

    @property
    def client(self):
        """The `MlflowClient`, made on first use: a new SQLite store is created then, not before."""
        if self._client is None:
            self._client = make_client(self.uri, self.guard, self.link)
        return self._client

    def check(self, timeout: float = 10.0) -> None:
        """Reach the store once, before any training, or raise `ConfigError` (`_check_store`)."""
        _check_store(self, timeout)

    def start_sweep(self, experiment: str, run_name: str, params: Mapping[str, Any],
                    tags: Mapping[str, str]) -> str:
        """Open the parent run of a sweep in the experiment named after the sweep."""
        self.experiment_id = _experiment(self.client, experiment, self.artifact_root)
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        self.parent_run_id = run.info.run_id
        self._log_params(self.parent_run_id, params)
        return self.parent_run_id

    def start_trial(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                    system_metrics: bool = False) -> str:
        """Open a nested run under the sweep's parent run (``system_metrics``: sample CPU, memory, GPUs)."""
        assert self.parent_run_id is not None, "start_sweep first"
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={**tags, PARENT_TAG: self.parent_run_id}
        )
        self._log_params(run.info.run_id, params)
        if system_metrics:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # 4 INFO lines a trial

            monitor = self._monitors[run.info.run_id] = SystemMetricsMonitor(
                run.info.run_id, sampling_interval=SYSTEM_METRICS_SECONDS, tracking_uri=self.uri)
            monitor.start()
        return run.info.run_id

    def log_dataset(self, run_id: str, dataset: Mapping[str, Any]) -> None:
        """The sweep's data as the run's dataset input (name, source, digest, schema; split sizes as tags)."""
        self.client.log_inputs(run_id, datasets=[_dataset_input(dataset)])

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        _in_batches(self.client, run_id, 100, params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite metrics (NaN and inf are skipped), all at one step."""
        self.log_steps(run_id, [(step or 0, metrics, int(time.time() * 1000))])

    def log_steps(self, run_id: str, steps: Sequence[Step]) -> None:
        """Log several steps' finite metrics, in as few writes as MLflow allows (1,000 values each)."""
        from mlflow.entities import Metric

        _in_batches(self.client, run_id, 1000, metrics=[Metric(k, float(v), when, step) for step, metrics, when in steps
                                                        for k, v in metrics.items() if math.isfinite(float(v))])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        with self.guard.hold():
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(run_id, str(path), artifact_path)

    def end_run(self, run_id: str, status: str) -> None:
        """Close a run (FINISHED, FAILED, KILLED), then its system metrics: a lost server is met once."""
        monitor = self._monitors.pop(run_id, None)
        self.client.set_terminated(run_id, status=status)
        if monitor is not None:
            monitor.finish()

    def reopen_sweep(self, run_id: str) -> None:
        """Continue a sweep's parent run (on resume): new trials are nested under it again."""
        run = self.client.get_run(run_id)
        self.experiment_id, self.parent_run_id = run.info.experiment_id, run_id
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, "resumed", str(int(run.data.tags.get("resumed", "0")) + 1))
        if "error" in run.data.tags:  # why it stopped last time; the runs keep their own reasons
            self.client.delete_tag(run_id, "error")

    def join_sweep(self, run_id: str) -> None:
        """Nest this process's trial runs under a parent run another process opened (a worker)."""
        self.experiment_id, self.parent_run_id = self.client.get_run(run_id).info.experiment_id, run_id

    def running_trials(self, parent_run_id: str, tags: Mapping[str, str] | None = None) -> list[str]:
        """The ids of a sweep's nested runs (trials, seed runs a killed verdict left) still RUNNING (with ``tags``)."""
        return [r["run_id"] for r in self.trial_runs(parent_run_id, verdict=True, tags=tags) if r["status"] == "RUNNING"]

    def run_status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def trial_runs(self, parent_run_id: str, verdict: bool = False, tags: Mapping[str, str] | None = None) -> list[dict]:
        """A sweep's trial runs, each ``{"run_id", "status", "tags"}`` (``verdict``: its seed runs too;
        ``tags``: only those carrying them, found by the store: a long sweep's chief looks up thousands)."""
        where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in {PARENT_TAG: parent_run_id, **(tags or {})}.items())
        runs = self._runs(self.client.get_run(parent_run_id).info.experiment_id, where)
        return [r for r in runs if verdict or r["tags"].get("verdict") != "true"]

    def open_sweeps(self, experiment: str) -> list[dict]:
        """The parent runs of an experiment still RUNNING (none, and no store created, if it has none)."""
        found = None if store_missing(self.uri) else self.client.get_experiment_by_name(experiment)
        runs = self._runs(found.experiment_id, "attributes.status = 'RUNNING'") if found else []
        return [r for r in runs if PARENT_TAG not in r["tags"]]

    def _runs(self, experiment_id: str, where: str) -> list[dict]:
        runs = self.client.search_runs([experiment_id], filter_string=where, max_results=10_000)
        return [{"run_id": r.info.run_id, "status": r.info.status, "tags": r.data.tags} for r in runs]

    def download_artifact(self, run_id: str, artifact_path: str, folder: Path) -> Path:
        """Copy one of a run's artifacts into ``folder`` (through the server, if it proxies them)."""
        from mlflow.artifacts import download_artifacts

        with self.guard.hold(), self.link.calling():
            return Path(download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(folder),
                                           tracking_uri=self.uri))

    def log_model(self, run_id: str, name: str, export_dir: Path, sample: Any, outputs: Any,
                  also: tuple[str, ...] = ()) -> str:
        """Log an export folder as a pyfunc model of ``run_id`` (`lstm_models.tracking.mlflow_registry`)."""
        from lstm_models.tracking.mlflow_registry import log_export

        with self.guard.hold(), self.link.calling():
            return log_export(self.uri, run_id, name, export_dir, sample, outputs, also)

    def register_model(self, name: str, model_id: str, run_id: str, score: Mapping[str, Any]) -> dict:
        """A new version of ``name``; the alias ``champion`` if it wins."""
        from lstm_models.tracking.mlflow_registry import register

        with self.guard.hold(), self.link.calling():
            return register(self.uri, self.client, name, model_id, run_id, score)


def _in_batches(client, run_id: str, size: int, **entities) -> None:
    """``client.log_batch`` of one kind of entity (``params=[...]`` or ``metrics=[...]``), ``size`` at a time."""
    ((kind, items),) = entities.items()
    for i in range(0, len(items), size):
        client.log_batch(run_id, **{kind: items[i:i + size]})


def _experiment(client, name: str, artifact_root: str | None) -> str:
    """The id of the experiment ``name``, created (its artifacts under ``artifact_root``) if missing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=f"{artifact_root}/{name}" if artifact_root else None)
    except Exception:
        found = client.get_experiment_by_name(name)  # created meanwhile by another sweep
        if found is None:
            raise
        return found.experiment_id


def _dataset_input(dataset: Mapping[str, Any]):
    from mlflow.entities import Dataset, DatasetInput, InputTag

    sizes = dict(dataset["sizes"])
    schema = {"mlflow_colspec": [{"name": n, "type": t} for n, t in dataset["schema"]]}
    found = Dataset(name=dataset["name"], digest=dataset["digest"], source_type="lstm-models",
                    source=dataset["source"], schema=json.dumps(schema),
                    profile=json.dumps({"num_rows": sum(sizes.values()), **sizes}))
    tags = [InputTag("mlflow.data.context", "training"), InputTag("test_digest", dataset["test_digest"])]
    return DatasetInput(found, tags + [InputTag(f"{part}_size", str(n)) for part, n in sizes.items()])


def _check_store(tracker: MLflowTracker, timeout: float) -> None:
    """Reach the store once, before any training, or raise `ConfigError`. A server's ``/health``
    first, with a short timeout (the client would retry for minutes); a SQLite store that does not
    exist yet is not created (a run stopped by a data error leaves nothing), its folder must be writable."""
    if store_missing(tracker.uri):
        check_writable(sqlite_path(tracker.uri).parent, f"tracking URI {tracker.uri}")
        return
    if tracker.uri.startswith(("http://", "https://")):
        _check_health(tracker.uri, timeout)
    try:
        tracker.client.search_experiments(max_results=1)
    except Exception as exc:  # any transport or store error means: unusable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "error code 401" in first or "error code 403" in first:
            raise ConfigError(f"tracking URI {tracker.uri}: the server refused these credentials (HTTP "
                              f"{'401' if '401' in first else '403'}); give its user's with --credentials FILE, or "
                              "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") from None
        raise ConfigError(f"tracking URI {tracker.uri}: cannot reach the MLflow store ({first[:200]})") from None


def _check_health(uri: str, timeout: float) -> None:
    """Ask a tracking server for its ``/health`` with a short timeout (the client retries for minutes)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        reason = getattr(reason, "strerror", None) or reason  # "Connection refused", without the errno
        raise ConfigError(f"tracking URI {uri}: cannot reach the MLflow server ({reason})") from None
