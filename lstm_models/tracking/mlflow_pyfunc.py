"""The MLflow model of an export: this file travels inside the model (MLflow's "models from code").

MLflow stores this file with the model and runs it when the model is loaded
(``mlflow.pyfunc.load_model``, ``mlflow models serve``), so it imports nothing of lstm_models:
a registered model loads wherever tensorflow, numpy, pandas and mlflow are installed. It wraps
the export's SavedModel and calls its ``serve`` signature, the same graph as
``tf.saved_model.load(exports/<name>).serve(...)``: raw strings in, one probability per class
out (columns named after the classes), or windows of raw values in, the forecast out in the
series' own units.
"""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

SAVEDMODEL = "savedmodel"  # the artifact key of the export folder
TEXT_COLUMN = "text"  # the one input column of a text model


class ServedExport(PythonModel):
    """Calls an export's SavedModel on raw inputs."""

    def load_context(self, context):
        import tensorflow as tf

        folder = Path(context.artifacts[SAVEDMODEL])
        self.meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.model = tf.saved_model.load(str(folder))

    def predict(self, context, model_input: pd.DataFrame, params=None):  # the signature checks it; no hint-made schema
        import tensorflow as tf

        if "class_names" in self.meta:
            texts = _texts(model_input)
            probs = np.asarray(self.model.serve(tf.constant(texts, dtype=tf.string)))
            return pd.DataFrame(probs.astype("float64"), columns=self.meta["class_names"])
        windows = np.asarray(model_input, dtype="float32")  # (batch, lookback, features), as the signature says
        return np.asarray(self.model.serve(tf.constant(windows)))


def _texts(model_input) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        column = TEXT_COLUMN if TEXT_COLUMN in model_input.columns else model_input.columns[0]
        values = model_input[column].tolist()
    else:
        values = np.asarray(model_input, dtype=object).ravel().tolist()
    return [str(v) for v in values]


mlflow.models.set_model(ServedExport())
