"""After a tracked sweep: what happens inside the cells, logged to the parent run under ``inside/``.

The exported (best) model's gate heatmaps for a few test examples, and the gradient-flow probe
of the best model of each cell type, one line per cell. The probe uses the models the sweep's end
already holds (each scored on test) rather than loading them again. The heatmaps load the export:
the exported model shares its layers with the trained one, and a sub-model up to each layer needs
layers of its own.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Mapping

from lstm_models.interrupt import Deferral

EXAMPLES = 3
PROBE_LENGTH = 100
# The probe's cost grows with its batch times the model's output units (one backward pass over
# that many copies of 100 steps): with 16 sequences it took 7.7-11.5 s for a 2-layer bidirectional
# GRU or LSTM of the short-sentence sweep, and a sweep's views up to 56 s, longer than its search.
# With 4: 3.1-3.3 s, and the norms at the first and last step within 2% of those with 16.
PROBE_BATCH = 4


def log_inside_views(result, task, tracker, models: Mapping[str, object], log: Callable[[str], None],
                     guard: Deferral) -> list[str]:
    """Write the gate and gradient views of a finished sweep and log them to its parent run.

    Args:
        result: the `SweepResult`, with its export written and its parent run.
        task: the sweep's task (its test examples as the model's inputs).
        tracker: skipped when it records nothing (``--tracking-uri none``).
        models: cell -> the Keras model of that cell's best trial (`result.best_per_cell`).
        log: where the one progress line goes.
        guard: the sweep's interrupts: one that TensorFlow reworded as an error stops the sweep,
            it is not reported as a failed view.

    Returns:
        The names of the files logged (under ``inside/``); none when a view failed: the export
        is done, so the failure is logged and tagged (``inside_error``), not raised.
    """
    if not tracker.enabled or not result.parent_run_id or result.export_dir is None:
        return []
    try:
        with guard.unmasking(), tempfile.TemporaryDirectory(prefix="lstm-models-") as scratch:
            return _write_and_log(result, task, tracker, Path(scratch), models, log)
    except Exception as exc:  # the export is done: a failed view is reported, not fatal
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        tracker.set_tags(result.parent_run_id, {"inside_error": message})
        log(f"inside/: not written ({message})")
        return []


def _write_and_log(result, task, tracker, scratch: Path, models: Mapping[str, object],
                   log: Callable[[str], None]) -> list[str]:
    from lstm_models.export import load_export
    from lstm_models.inspect import gradients
    from lstm_models.inspect.gates import gates_report

    out = scratch / "inside"
    out.mkdir(parents=True, exist_ok=True)
    model, meta = load_export(result.export_dir)
    for n, (x, labels) in enumerate(task.examples(model, meta, EXAMPLES), start=1):
        gates_report(model, x, labels, out, title=f"{result.spec.name}: {result.best.name}, test example {n}",
                     stem=f"gates_test_{n}")
    probes = [gradients.probe_trained(models[cell], PROBE_LENGTH, f"{cell} ({trial.name})", batch=PROBE_BATCH)
              for cell, trial in sorted(result.best_per_cell.items())]
    gradients.gradients_report(probes, out, title=f"{result.spec.name}: best model per cell, "
                                                  f"{PROBE_BATCH} random sequences of {PROBE_LENGTH} steps")
    files = sorted(out.iterdir())
    for path in files:
        tracker.log_artifact(result.parent_run_id, path, "inside")
    log(f"inside/: gates of {result.best.name} for {EXAMPLES} test examples, gradient probe of "
        f"{', '.join(sorted(result.best_per_cell))}")
    return [p.name for p in files]
