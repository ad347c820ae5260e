"""The gradient-flow probe: how much the last output still depends on each earlier input.

For a recurrent stack and a batch of random sequences of ``length`` steps, it measures
``||dh_T / dx_t||``, the Frobenius norm of the Jacobian of the last output ``h_T`` with respect
to the input ``x_t`` at step ``t``, averaged over the batch. A vanilla RNN's value typically falls
off geometrically as ``t`` moves away from ``T`` (vanishing gradients); an LSTM's cell state keeps
it up for as long as its forget gate stays near 1, which is learnt: at initialisation the forget
gate is about sigmoid(1) = 0.73 and the probe may well show the LSTM decaying faster.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_models.models.cells import cell_kind
from lstm_models.inspect.gates import recurrent_layers
from lstm_models.tracking.plots import CELL_COLOURS, figure

DEFAULT_BATCH = 16


@dataclass
class Probe:
    """One line of the plot: a name, its cell type and ``||dh_T/dx_t||`` for t = 1..T."""

    name: str
    cell: str
    norms: np.ndarray


def jacobian_norms(stack, x) -> np.ndarray:
    """``||dh_T/dx_t||`` per step ``t``, averaged over the batch.

    Args:
        stack: a callable from ``(batch, time, features)`` to the outputs of the last layer,
            ``(batch, units)`` or ``(batch, time, units)`` (then the last step is ``h_T``).
        x: the inputs, ``(batch, time, features)``.

    Returns:
        ``(time,)`` float64.
    """
    import tensorflow as tf

    x = tf.constant(np.asarray(x, dtype="float32"))
    batch = int(x.shape[0])
    traced = tf.function(stack)  # traced, not run eagerly: an eager pass over 100 steps took 2.6 s
    units = int(traced.get_concrete_function(tf.TensorSpec([1, *x.shape[1:]], tf.float32)).output_shapes[-1])

    # Row u of dh_T/dx is the gradient of h_T[u]: one backward pass over ``units`` copies of each
    # example, each weighted by one basis vector, gives every example's whole Jacobian exactly, in
    # one call. Much cheaper to trace than tape.batch_jacobian, whose pfor over the recurrent
    # while-loop took ~20 s.
    @tf.function
    def jacobians(inputs):  # (batch, time, features) -> (batch, units, time, features)
        copies = tf.repeat(inputs, units, axis=0)
        with tf.GradientTape() as tape:
            tape.watch(copies)
            h = traced(copies)
            if len(h.shape) == 3:
                h = h[:, -1]
            weighted = tf.reduce_sum(h * tf.tile(tf.eye(units), [batch, 1]))
        return tf.reshape(tape.gradient(weighted, copies), [batch, units, *inputs.shape[1:]])

    rows = np.asarray(jacobians(x), dtype="float64")
    return np.sqrt((rows ** 2).sum(axis=(1, 3))).mean(axis=0)


def probe_fresh(cell: str, length: int, units: int, batch: int = DEFAULT_BATCH, seed: int = 0) -> Probe:
    """A freshly initialised one-layer cell (Keras defaults) on standard-normal inputs, one feature."""
    import keras

    from lstm_models.models.build import CELLS

    keras.utils.set_random_seed(seed)
    layer = CELLS[cell](units)
    x = np.random.default_rng(seed).normal(size=(batch, length, 1)).astype("float32")
    layer(x[:1])
    return Probe(f"{cell} (fresh, {units} units)", cell, jacobian_norms(lambda t: layer(t, training=False), x))


def probe_trained(model, length: int, name: str = "", batch: int = DEFAULT_BATCH, seed: int = 0) -> Probe:
    """The recurrent stack of a trained model, from the first recurrent layer's input to the last's output.

    The inputs are what that first layer sees for random data: embeddings of tokens drawn
    uniformly from the vocabulary (text models) or standard-normal values, which is what the
    model's normalisation turns its training windows into (forecasting models).
    """
    found = recurrent_layers(model)
    rng = np.random.default_rng(seed)
    embedding = next((l for l in model.layers if type(l).__name__ == "Embedding"), None)
    if embedding is not None:
        ids = rng.integers(2, embedding.input_dim, size=(batch, length))
        x = np.asarray(embedding(ids))
    else:
        first = found[0].input
        width = (first[0] if isinstance(first, (list, tuple)) else first).shape[-1]
        x = rng.normal(size=(batch, length, width)).astype("float32")

    # A bidirectional last layer: its forward half only. Its backward half has just read x_1 at
    # step T, and made the curve a U that hid the vanishing (concat: forward units first).
    forward = getattr(getattr(found[-1], "forward_layer", None), "units", None)

    def stack(inputs):
        for layer in found:
            inputs = layer(inputs, training=False)
        return inputs if forward is None else inputs[..., :forward]

    inner = getattr(found[0], "forward_layer", found[0])
    cell = cell_kind(inner)
    return Probe(name or f"{cell} (trained: {model.name})", cell, jacobian_norms(stack, x))


def write_csv(probes: list[Probe], path: Path) -> Path:
    """One row per step ``t`` (1..T), one column per probe."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["t", "steps_before_T", *(p.name for p in probes)])
        length = len(probes[0].norms)
        for t in range(length):
            writer.writerow([t + 1, length - 1 - t, *(f"{p.norms[t]:.6g}" for p in probes)])
    return path


def plot(probes: list[Probe], path: Path, title: str = "") -> Path:
    """``||dh_T/dx_t||`` against t, log scale, one line per probe."""
    with figure(path, figsize=(7.5, 4.2), dpi=100) as (fig, ax):
        styles = ["-", "--", ":", "-."]
        seen: dict[str, int] = {}
        for p in probes:
            n = seen[p.cell] = seen.get(p.cell, -1) + 1
            steps = np.arange(1, len(p.norms) + 1)
            shown = np.where(p.norms > 0, p.norms, np.nan)  # exactly 0: below float32, off a log scale
            ax.plot(steps, shown, styles[n % 4], color=CELL_COLOURS.get(p.cell), label=p.name)
        ax.set_yscale("log")
        ax.set_xlabel("input step t (T = last)")
        ax.set_ylabel("||dh_T / dx_t||  (batch mean)")
        ax.set_title(title or f"gradient flow over {len(probes[0].norms)} steps")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return path


def summary(probes: list[Probe]) -> list[str]:
    """One line per probe: the norm at the last step, and how far it fell by the first."""
    lines = []
    for p in probes:
        last, first = p.norms[-1], p.norms[0]
        ratio = first / last if last > 0 else float("nan")
        fell = f"x{ratio:.2g}" if first > 0 else "vanished below float32"
        lines.append(f"{p.name}: ||dh_T/dx_T|| {last:.3g}, ||dh_T/dx_1|| {first:.3g} "
                     f"({fell} over {len(p.norms) - 1} steps)")
    return lines


def gradients_report(probes: list[Probe], out: Path, title: str = "", stem: str = "gradients") -> list[str]:
    """Write ``<stem>.csv`` and ``<stem>.png`` into ``out``; return the summary lines."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(probes, out / f"{stem}.csv")
    plot(probes, out / f"{stem}.png", title)
    return summary(probes)
