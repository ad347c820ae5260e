"""Links into the MLflow UI: each experiment's runs table.

MLflow 3.17's UI opens an experiment in its GenAI view; ``#/experiments/<id>/runs`` is the
runs table, where a sweep's trials sit nested under its parent run. The experiments are read
through an `MLflowTracker`'s client (its SQLite retries included); nothing here imports mlflow.
"""

from __future__ import annotations

from lstm_models.tracking.mlflow_client import store_missing
from lstm_models.tracking.mlflow_store import MLflowTracker


def experiments(tracker: MLflowTracker) -> list[tuple[str, str]]:
    """(id, name) of the store's active experiments, by name.

    "Default" is left out while it holds no run. A SQLite file that does not exist yet has
    none, and is not created.
    """
    if store_missing(tracker.uri):
        return []
    client = tracker.client
    found = [(e.experiment_id, e.name) for e in client.search_experiments()
             if e.name != "Default" or client.search_runs([e.experiment_id], max_results=1)]
    return sorted(found, key=lambda pair: pair[1])


def runs_links(found: list[tuple[str, str]], base: str) -> list[str]:
    """One line per (id, name) experiment: ``name: BASE/#/experiments/ID/runs``."""
    return [f"{name}: {base}/#/experiments/{experiment_id}/runs" for experiment_id, name in found]
