"""The task registry: text or series, decided here and nowhere else.

Each task implements one small interface over its splits: ``name``, ``test_metric``, ``unit``,
``make_inputs`` (vocabulary or normalisation, from the training split), ``batches`` (the
``tf.data`` pipeline of a part for a model spec), ``baselines``, ``export_meta``, ``examples``
(inputs for the inspection views), ``tags`` (the parent run's) and ``describe``.
"""

from __future__ import annotations

from typing import Any

from lstm_models.data.splits import SequenceSplits, TextSplits
from lstm_models.errors import ConfigError
from lstm_models.tasks.series import SequenceTask, SeriesTask, values_input
from lstm_models.tasks.text import TextTask, text_input

# The flag that gives an export's gate inspector its input, per task.
INPUT_FLAGS = {TextTask.name: "--text", SeriesTask.name: "--values"}


def task_for(data: Any) -> TextTask | SeriesTask | SequenceTask:
    """The task of a loaded dataset (`TextSplits`, `SeriesSplits` or `SequenceSplits`)."""
    if isinstance(data, TextSplits):
        return TextTask(data)
    if isinstance(data, SequenceSplits):
        return SequenceTask(data)
    return SeriesTask(data)


def check_input(meta: dict, text: str | None, values: str | None):
    """Check a gate-inspector input against the export's task; return the window for ``--values``
    (None for text: a text becomes the model's input once the model is loaded, `text_input`)."""
    task = meta.get("task")
    given = "--text" if text is not None else "--values"
    if INPUT_FLAGS.get(task) != given:
        if given == "--text":
            raise ConfigError(f"--text: this export is a {task} model; give --values "
                              f"({meta.get('lookback')} comma-separated values)")
        raise ConfigError(f"--values: this export is a {task} model; give --text")
    return values_input(meta, values) if values is not None else None


__all__ = ["INPUT_FLAGS", "SequenceTask", "SeriesTask", "TextTask", "check_input", "task_for", "text_input"]
