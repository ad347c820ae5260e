"""The Tracker protocol: what a sweep records, and where. No mlflow here.

A sweep is a parent run and each trial a nested run. `MLflowTracker`
(`lstm_models.tracking.mlflow_store`, the only mlflow importer) writes them to a store;
`NullTracker` records nothing (tests, ``--tracking-uri none``). Callers ask ``enabled``, never
the URI, whether anything is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

NO_TRACKING = "none"  # the tracking URI that records nothing
Step = tuple[int, Mapping[str, float], int]  # a step, its metrics, when (unix time in ms)


class Tracker(Protocol):
    """Where a sweep's runs go. Run ids are strings; a tracker that records nothing returns ''."""

    uri: str
    enabled: bool

    def check(self) -> None:
        """Reach the store once, before any training, or raise `ConfigError`."""

    def start_sweep(self, experiment: str, run_name: str, params: Mapping[str, Any],
                    tags: Mapping[str, str]) -> str:
        """Open the parent run of a sweep; return its id."""

    def reopen_sweep(self, run_id: str) -> None:
        """Continue a sweep's parent run (on resume)."""

    def join_sweep(self, run_id: str) -> None:
        """Nest this process's trial runs under a parent run another process opened (a worker)."""

    def start_trial(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                    system_metrics: bool = False) -> str:
        """Open a trial's run under the parent; return its id. ``system_metrics``: sample CPU and
        memory (and GPUs) into the run until it ends."""

    def log_dataset(self, run_id: str, dataset: Mapping[str, Any]) -> None:
        """Record the sweep's data (`lstm_models.data.splits.dataset_record`) as the run's input."""

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite metrics at one step."""

    def log_steps(self, run_id: str, steps: Sequence[Step]) -> None:
        """Log several steps' finite metrics in one write: ``(step, metrics, unix time in ms)`` each."""

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None: ...

    def end_run(self, run_id: str, status: str) -> None:
        """Close a run as FINISHED, FAILED or KILLED."""

    def log_model(self, run_id: str, name: str, export_dir: Path, sample: Any, outputs: Any,
                  also: tuple[str, ...] = ()) -> str:
        """Log an export folder as the MLflow model ``name`` made by run ``run_id`` (and listed by the
        runs ``also``); ``sample`` and ``outputs`` are raw inputs and the model's answers. Return its id."""

    def register_model(self, name: str, model_id: str, run_id: str, score: Mapping[str, Any]) -> dict:
        """Register a logged model as a new version of ``name`` and move its aliases.

        ``score``: ``task``, ``metric``, ``value``, ``direction``, ``test_digest``. Returns
        ``{"version", "champion", "message"}`` (see `lstm_models.tracking.mlflow_registry.register`).
        """

    def running_trials(self, parent_run_id: str, tags: Mapping[str, str] | None = None) -> list[str]:
        """The ids of a sweep's nested runs (trials and verdict seed runs) still RUNNING (and carrying ``tags``)."""

    def run_status(self, run_id: str) -> str: ...

    def trial_runs(self, parent_run_id: str, verdict: bool = False, tags: Mapping[str, str] | None = None) -> list[dict]:
        """A sweep's trial runs, each ``{"run_id", "status", "tags"}`` (``verdict``: the verdict's seed runs too;
        ``tags``: only those carrying them)."""

    def open_sweeps(self, experiment: str) -> list[dict]:
        """The parent runs of an experiment still RUNNING, each ``{"run_id", "status", "tags"}``."""

    def download_artifact(self, run_id: str, artifact_path: str, folder: Path) -> Path:
        """Copy one of a run's artifacts into ``folder``; return its local path."""


class NullTracker:
    """Tracks nothing; every method is a no-op returning what the real one would."""

    uri = NO_TRACKING
    enabled = False

    def check(self) -> None:
        pass

    def start_sweep(self, experiment: str, run_name: str, params: Mapping[str, Any],
                    tags: Mapping[str, str]) -> str:
        return ""

    def reopen_sweep(self, run_id: str) -> None:
        pass

    def join_sweep(self, run_id: str) -> None:
        pass

    def start_trial(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                    system_metrics: bool = False) -> str:
        return ""

    def log_dataset(self, run_id: str, dataset: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_steps(self, run_id: str, steps: Sequence[Step]) -> None:
        pass

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        pass

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def end_run(self, run_id: str, status: str) -> None:
        pass

    def log_model(self, run_id: str, name: str, export_dir: Path, sample: Any, outputs: Any,
                  also: tuple[str, ...] = ()) -> str:
        return ""

    def register_model(self, name: str, model_id: str, run_id: str, score: Mapping[str, Any]) -> dict:
        return {}

    def running_trials(self, parent_run_id: str, tags: Mapping[str, str] | None = None) -> list[str]:
        return []

    def run_status(self, run_id: str) -> str:
        return ""

    def trial_runs(self, parent_run_id: str, verdict: bool = False, tags: Mapping[str, str] | None = None) -> list[dict]:
        return []

    def open_sweeps(self, experiment: str) -> list[dict]:
        return []

    def download_artifact(self, run_id: str, artifact_path: str, folder: Path) -> Path:
        raise FileNotFoundError(f"{artifact_path}: nothing is tracked, so no run has it")


def make_tracker(uri: str, guard=None) -> Tracker:
    """The tracker of a tracking URI: `NullTracker` for ``none``, else an `MLflowTracker` whose
    writes to a SQLite store ``guard`` (`lstm_models.interrupt.Deferral`) does not cut in half."""
    if uri == NO_TRACKING:
        return NullTracker()
    from lstm_models.tracking.mlflow_store import MLflowTracker

    return MLflowTracker(uri, guard=guard)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become their string form."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out

