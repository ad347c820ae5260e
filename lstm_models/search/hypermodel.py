"""The hypermodel: a search space, a task's inputs and batches in; built and trained models out.

It stands alone: no tuner, no tracker, no sweep object. Keras Tuner calls `build` and `fit`;
the adapter (`lstm_models.search.tuner`) hands `fit` the trial's `ModelSpec` (sampled once),
its shuffle seed and its recorder callback.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Callable

import keras
import keras_tuner as kt

from lstm_models.errors import TrialFailed
from lstm_models.interrupt import Deferral
from lstm_models.models.build import ModelSpec, build_model
from lstm_models.search.space import sample_spec
from lstm_models.search.timing import EpochClock, Phases
from lstm_models.spec.sweep import SweepSpec

if TYPE_CHECKING:
    from lstm_models.search.recorder import TrialRecorder


class SweepHyperModel(kt.HyperModel):
    """Builds and trains the models of one sweep's search space.

    Args:
        spec: the sweep spec (search space, task, objective, early stopping, XLA).
        inputs: the task's model inputs (vocabulary, or normalisation statistics).
        batches: ``(part, ModelSpec, shuffle_seed) -> tf.data.Dataset``, from the task.
        guard: the sweep's interrupts (`lstm_models.interrupt`): one that got lost stops training.
    """

    def __init__(self, spec: SweepSpec, inputs, batches, guard: Deferral | None = None):
        super().__init__()
        self.spec, self.inputs, self.batches, self.guard = spec, inputs, batches, guard or Deferral()

    def model_spec(self, hp) -> ModelSpec:
        """Declare the space on ``hp`` (first call) and read its values into a `ModelSpec`."""
        return sample_spec(hp, self.spec.search, self.spec.task, self.spec.dataset.options.get("lookback"))

    def build(self, hp):
        return self.build_spec(self.model_spec(hp))

    def build_spec(self, model_spec: ModelSpec, seed: int | None = None) -> keras.Model:
        return build_model(model_spec, self.inputs, seed=seed, jit_compile=self.spec.tuner.jit_compile,
                           train_steps=self.train_steps(model_spec) if self.inputs.unrolls(model_spec) else None)

    def train_steps(self, model_spec: ModelSpec) -> int | None:
        """At most how many batches a model of this sweep trains on (None: the pipeline cannot tell)."""
        per_epoch = int(self.batches("train", model_spec).cardinality())
        return per_epoch * self.spec.tuner.max_epochs if per_epoch > 0 else None

    def fit(self, hp, model, *args, model_spec: ModelSpec | None = None, shuffle_seed: int | None = None,
            extra_callbacks=(), epochs=1, initial_epoch=0, callbacks=(), restore_best: bool = False,
            clock: EpochClock | None = None, **kwargs):
        """Train on the train part, validate on val; stop on a NaN loss or when val stops improving
        (``restore_best``: and go back to the best epoch's weights, as the verdict's seed runs do).
        ``clock`` times the epochs' parts; it goes first, before the best-epoch checkpoint."""
        model_spec = model_spec or self.model_spec(hp)
        train = self.batches("train", model_spec, shuffle_seed=shuffle_seed)
        val = self.batches("val", model_spec)
        callbacks = ([clock] if clock is not None else []) + list(callbacks) + list(extra_callbacks) + self._callbacks(restore_best)
        return model.fit(train, validation_data=val, epochs=epochs, initial_epoch=initial_epoch,
                         callbacks=callbacks, verbose=0, shuffle=False)  # the pipeline shuffles

    def _callbacks(self, restore_best: bool = False) -> list:
        es = self.spec.early_stopping
        out = [StopOnNaN(), StopOnInterrupt(self.guard)]
        if es.patience > 0 or restore_best:
            out.append(keras.callbacks.EarlyStopping(monitor=self.spec.objective, mode=self.spec.direction,
                                                     patience=es.patience if es.patience > 0 else self.spec.tuner.max_epochs,
                                                     min_delta=es.min_delta, restore_best_weights=restore_best))
        return out


class StopOnNaN(keras.callbacks.Callback):
    """A NaN or infinite loss ends the trial at once, as a failure."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrialFailed(f"loss became {float(loss)} at batch {batch}")


class StopOnInterrupt(keras.callbacks.Callback):
    """An interrupt (Ctrl-C, the chief's SIGTERM) that its handler raised where Python dropped it
    stops the training at the next batch (`Deferral.raise_lost`), as it would have at once."""

    def __init__(self, guard: Deferral):
        super().__init__()
        self.guard = guard

    def on_train_batch_end(self, batch, logs=None):
        self.guard.raise_lost()

    def on_test_batch_end(self, batch, logs=None):
        self.guard.raise_lost()


class EpochLog(keras.callbacks.Callback):
    """Hands every epoch's metrics and time, and the model's size, to the recorder, which writes
    the epochs it still holds when the fit ends; and reports each epoch to ``report``
    (``(epoch, logs) -> why``: the oracle, for the pruner), which stops the trial with a reason
    (on any epoch but its last). With the fit's ``clock``, an epoch's time ends with its batches,
    and the callbacks between (the checkpoint) and the logging are timed."""

    def __init__(self, recorder: TrialRecorder, report: Callable[[int, dict], str] | None = None,
                 clock: EpochClock | None = None):
        super().__init__()
        self.recorder, self.report, self.clock, self.start = recorder, report, clock, 0.0

    def on_train_begin(self, logs=None):
        self.recorder.current.n_params = self.model.count_params()

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if self.clock is None:
            self.recorder.epoch(epoch, self.params["epochs"], logs or {}, now - self.start)
        else:
            self.clock.phases.add("checkpoint", now - self.clock.ended)
            with self.clock.phases.timed("tracking"):
                self.recorder.epoch(epoch, self.params["epochs"], logs or {}, self.clock.ended - self.start)
        why = self.report(epoch, logs or {}) if self.report is not None else ""
        if why and epoch + 1 < self.params["epochs"]:
            self.model.stop_training = True
            self.recorder.prune(epoch, why)

    def on_train_end(self, logs=None):
        # The epochs not written yet (`PendingEpochs`), on the trial's clock
        with self.clock.phases.timed("tracking") if self.clock is not None else nullcontext():
            self.recorder.pending.flush()


class BestEpoch(keras.callbacks.Callback):
    """Keras Tuner's best-epoch checkpoint (``SaveBestEpoch``: the weights and optimizer state of the
    epoch with the best objective, in ``filepath``), written once, when the fit ends.

    Keras Tuner writes the file on every better epoch: 50-80 ms each for a sunspots model on
    2 cores, which on short series trains epochs of about that length and improves on most of
    them. Here a better epoch's variables are copied in memory (4-8 ms); when the fit ends they
    are put back for the one write, then the last epoch's are, so the file and the model after
    fit are as Keras Tuner's. A fit that raises writes nothing: its trial failed.

    ``phases`` times the write as the trial's ``checkpoint`` (`lstm_models.search.timing`).
    ``still_ours`` (a worker's): asked before the write; False (the chief gave the trial to another
    worker meanwhile) writes nothing, where the other worker may write the trial's file.
    """

    def __init__(self, objective: kt.Objective, filepath: str, phases: Phases | None = None,
                 still_ours: Callable[[], bool] | None = None):
        super().__init__()
        self.objective, self.filepath, self.phases, self.still_ours = objective, filepath, phases, still_ours
        self.best_value = -math.inf if objective.direction == "max" else math.inf
        self._best: list | None = None

    def _variables(self) -> list:
        return list(self.model.variables) + list(self.model.optimizer.variables)

    def on_epoch_end(self, epoch, logs=None):
        # As SaveBestEpoch: every epoch counts when the objective is not in the logs
        if self.objective.has_value(logs):
            value = self.objective.get_value(logs)
            if not self.objective.better_than(value, self.best_value):
                return
            self.best_value = value
        self._best = [v.numpy() for v in self._variables()]

    def on_train_end(self, logs=None):
        if self._best is None or (self.still_ours is not None and not self.still_ours()):
            return
        with self.phases.timed("checkpoint") if self.phases is not None else nullcontext():
            variables = self._variables()
            last = [v.numpy() for v in variables]
            for variable, value in zip(variables, self._best):
                variable.assign(value)
            self.model.save_weights(self.filepath)
            for variable, value in zip(variables, last):
                variable.assign(value)
        self._best = None
