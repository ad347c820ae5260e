"""What a process keeps warm between its trials: the models a continued Hyperband trial reuses,
and the long-lived objects kept out of the garbage collector's passes (`long_lived_objects_frozen`).

Hyperband's continued trials reuse their parent's model object, and the graphs traced on it.

A continued trial trains its parent's configuration further, from the parent's best checkpoint.
Built anew, its model traces its training and validation graphs again: 5-13 s for a text model
on 2 cores, longer than a few of its epochs on short sentences. When the parent trained in this
process, its model is reused instead: a model built afresh for the trial gives it its random
states (dropout's seeds, which no checkpoint holds), then the checkpoint's weights and optimizer
state are loaded into it, so that it trains exactly as the new model would. The graphs, traced
for the same configuration, stay valid. Only this process's models are kept; a worker that
continues another worker's trial builds it anew.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from contextlib import contextmanager

KEEP = 8  # models kept; a Hyperband round continues at most a third of the round before it


class TracedModels:
    """The models of the last `KEEP` trials that a later trial may continue, by trial id."""

    def __init__(self, keep: int | None = None):
        self.keep = KEEP if keep is None else keep
        self._models: OrderedDict[str, object] = OrderedDict()

    def __len__(self) -> int:
        return len(self._models)

    def add(self, trial_id: str, model) -> None:
        self._models[trial_id] = model
        self._models.move_to_end(trial_id)
        while len(self._models) > self.keep:
            self._models.popitem(last=False)

    def take(self, trial_id: str, fresh):
        """The kept model of ``trial_id`` with ``fresh``'s random states, or ``fresh`` itself when
        none is kept (or it does not have the same layers: then it is dropped)."""
        model = self._models.pop(trial_id, None)
        if model is None:
            return fresh
        mine, theirs = _seed_states(model), _seed_states(fresh)
        if len(mine) != len(theirs) or _shapes(model) != _shapes(fresh):
            return fresh
        for kept, new in zip(mine, theirs):
            kept.assign(new)
        return model

    def clear(self) -> None:
        self._models.clear()


def _shapes(model) -> list:
    return [(type(layer).__name__, [tuple(w.shape) for w in layer.weights]) for layer in model.layers]


def _seed_states(model) -> list:
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


@contextmanager
def long_lived_objects_frozen():
    """Keep the process's long-lived objects out of the garbage collector's full passes.

    Keras Tuner calls ``clear_session()`` and ``gc.collect()`` before every trial, and each full
    pass walked the half a million objects TensorFlow, Keras and MLflow create at import: 0.4-0.6 s
    each, 19 s of clearing in a 12-trial sweep of short sentences. Objects alive when the search
    starts are frozen (`gc.freeze`); those made later (models, graphs) are still collected, and
    everything is unfrozen when the block ends.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
