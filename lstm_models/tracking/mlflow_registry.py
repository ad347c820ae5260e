"""Exports as MLflow models, and the registry's aliases: ``latest`` and ``champion``.

An export folder is logged as a pyfunc model whose code (`lstm_models.tracking.mlflow_pyfunc`)
travels with it and calls the export's SavedModel, so ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` answer raw input with the numbers ``tf.saved_model.load(export).serve``
gives. Why pyfunc and not the Keras or TensorFlow flavour: their pyfunc wrappers feed a
DataFrame's values to the model as numbers, while ours takes raw strings (text) or windows of
raw values (series) and names its outputs after the classes. The model pins the versions of
tensorflow, keras, mlflow, numpy and pandas this sweep ran with.

The newest version is ``models:/<name>/latest`` (MLflow reserves ``latest``: no alias may take
that name, and the URI already means the newest version). The alias ``champion`` moves to a new
version only when its test metric beats the champion's on the same test split (the same test
digest, task and metric).
"""

from __future__ import annotations

import contextlib
import logging
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")  # stored with each model; it imports nothing of ours,
SAVEDMODEL, TEXT_COLUMN = "savedmodel", "text"  # so these two are repeated there (a test checks they agree)
REQUIREMENTS = ("tensorflow", "keras", "mlflow", "numpy", "pandas")
CHAMPION = "champion"
SCORE_TAGS = ("task", "metric", "value", "direction", "test_digest")  # each version carries them


def log_export(uri: str, run_id: str, name: str, export_dir: Path, sample, outputs, also: tuple[str, ...] = ()) -> str:
    """Log ``export_dir`` as the pyfunc model ``name`` of run ``run_id``, in the run's experiment,
    with the run's params; the runs ``also`` list it too. Returns the logged model's id."""
    import mlflow
    from mlflow.entities import LoggedModelOutput

    sample, outputs = np.asarray(sample), np.asarray(outputs)
    text = sample.dtype.kind in "OUS"
    example = _text_frame(sample[:3], TEXT_COLUMN) if text else sample[:2].astype("float32")
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)  # Model.log alone would put the model in the active (default) experiment
    model = client.create_logged_model(run.info.experiment_id, name=name, source_run_id=run_id,
                                       params=dict(run.data.params), model_type="lstm-models export")
    logging.getLogger("mlflow.pyfunc").setLevel(logging.WARNING)  # "Validating input example", per model
    with tracking_uri(uri):
        mlflow.models.Model.log(
            None, name=name, flavor=mlflow.pyfunc, run_id=run_id, model_id=model.model_id,
            python_model=str(PYFUNC_CODE), artifacts={SAVEDMODEL: str(export_dir)},
            signature=_signature(export_dir, sample, outputs, text), input_example=example,
            pip_requirements=[f"{p}=={metadata.version(p)}" for p in REQUIREMENTS])
    for other in also:
        client.log_outputs(other, models=[LoggedModelOutput(model.model_id, step=0)])
    return model.model_id


def _text_frame(texts, column: str):
    import pandas as pd

    return pd.DataFrame({column: [str(t) for t in texts]})


def _signature(export_dir: Path, sample: np.ndarray, outputs: np.ndarray, text: bool):
    import json

    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    if text:  # one unnamed column of strings in, so that {"inputs": [...strings...]} is served
        classes = json.loads((Path(export_dir) / "meta.json").read_text(encoding="utf-8"))["class_names"]
        return ModelSignature(Schema([ColSpec("string")]), Schema([ColSpec("double", c) for c in classes]))
    return ModelSignature(Schema([TensorSpec(np.dtype("float32"), (-1, *sample.shape[1:]))]),
                          Schema([TensorSpec(np.dtype("float32"), (-1, *outputs.shape[1:]))]))


@contextlib.contextmanager
def tracking_uri(uri: str):
    """MLflow's model logging and registry read the global tracking URI: set it for the call only,
    then put back exactly what was there (``set_tracking_uri`` also writes MLFLOW_TRACKING_URI, and a
    URI set explicitly, even to the default, would outrank that variable from then on)."""
    import os

    import mlflow
    from mlflow.tracking._tracking_service import utils  # the URI as set, None when never set

    saved, variable = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved)  # None: unset, so the variable and the default apply again
        if variable is not None:
            os.environ["MLFLOW_TRACKING_URI"] = variable


def register(uri: str, client, name: str, model_id: str, run_id: str, score: Mapping[str, Any]) -> dict:
    """A new version of ``name`` from a logged model; the alias ``champion`` on it if it wins.

    Returns:
        ``{"version", "champion", "message"}``: the new version, the champion's version after
        this, and one line saying whether the champion moved and why.
    """
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # it exists already: add a version
        client.create_registered_model(name, description=f"The best model of the sweep {name} (lstm-models)")
    tags = {k: str(score[k]) for k in SCORE_TAGS}
    logging.getLogger("mlflow.store.model_registry.abstract_store").setLevel(logging.WARNING)  # "Waiting up to 300 s"
    with tracking_uri(uri):  # the registry looks the logged model up through the global URI
        version = client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                                              model_id=model_id).version
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    moves, why = champion_verdict(champion and champion.version, champion.tags if champion else {}, tags)
    if moves:
        client.set_registered_model_alias(name, CHAMPION, version)
    return {"version": str(version), "champion": str(version if moves else champion.version),
            "message": why.format(new=version)}


def champion_verdict(champion: str | None, held: Mapping[str, str], new: Mapping[str, str]) -> tuple[bool, str]:
    """Whether a new version (score tags ``new``) takes ``champion`` from the version holding it
    (score tags ``held``), and why, in one line where ``{new}`` stands for the new version."""
    if champion is None:
        return True, "champion: version {new}, the first of this model"
    for key, what in (("task", "task"), ("metric", "test metric"), ("test_digest", "test split")):
        if held.get(key) != new[key]:
            return False, (f"champion stays version {champion}: it was scored on another {what} ({held.get(key)} "
                           f"vs {new[key]}), so the two cannot be compared; move the alias by hand if version "
                           "{new} should serve")
    old, value, metric = float(held["value"]), float(new["value"]), new["metric"]
    if value > old if new["direction"] == "max" else value < old:
        return True, f"champion: version {{new}}, test {metric} {value:.4f} against {old:.4f} for version {champion}"
    return False, (f"champion stays version {champion}: its test {metric} {old:.4f}; version {{new}}'s "
                   f"{value:.4f} does not beat it")
