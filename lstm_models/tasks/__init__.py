"""The task registry: text or series, decided here and nowhere else.

Each task implements one small interface over its splits: ``name``, ``test_metric``, ``unit``,
``make_inputs`` (vocabulary or normalisation, from the training split), ``batches`` (the
``tf.data`` pipeline of a part for a model spec), ``baselines``, ``export_meta``, ``examples``
(inputs for the inspection views), ``tags`` (the parent run's), ``describe`` and
``test_dependence`` (how the verdict resamples the test examples). The tasks load
TensorFlow; `check_input` (an export's raw input) does not.
"""

from __future__ import annotations

from typing import Any

from lstm_models.tasks.inputs import INPUT_FLAGS, check_input, values_input


def task_for(data: Any):
    """The task of a loaded dataset: `TextTask`, `SeriesTask` or `SequenceTask`."""
    from lstm_models.data.splits import SequenceSplits, TextSplits
    from lstm_models.tasks.series import SequenceTask, SeriesTask
    from lstm_models.tasks.text import TextTask

    if isinstance(data, TextSplits):
        return TextTask(data)
    if isinstance(data, SequenceSplits):
        return SequenceTask(data)
    return SeriesTask(data)


__all__ = ["INPUT_FLAGS", "check_input", "task_for", "values_input"]
