"""The gate inspector: every gate of every recurrent layer of an exported model, step by step.

``lstm-models gates EXPORT_DIR --text "..."`` (or ``--values`` for a forecasting model) loads the
Keras model kept beside the SavedModel, feeds one input, computes each recurrent layer's input
with a sub-model, runs `cells.run_reference` on it (checked against the layer's own output) and
writes ``gates.csv`` and ``gates.png``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_models.models.cells import GATES, cell_kind, run_bidirectional, run_reference
from lstm_models.errors import ConfigError
from lstm_models.tracking.plots import figure

# The standardisation TextVectorization applies by default: lower case, this punctuation removed.
_CLOSING_GATE = {"lstm": "f", "gru": "z"}
NOTES = {
    "gru": "GRU has no forget gate; its update gate z plays that part (h = z * h_prev + (1 - z) * h~: "
           "z near 0 overwrites the state, near 1 keeps it).",
    "rnn": "SimpleRNN has no gates: h_t = tanh(W x_t + U h_(t-1) + b) overwrites its state at every step; "
           "gates.csv and gates.png hold its output h only.",
}
_RANGES = {"f": (0, 1), "i": (0, 1), "o": (0, 1), "z": (0, 1), "r": (0, 1),
           "c_tilde": (-1, 1), "h_tilde": (-1, 1), "h": (-1, 1)}


@dataclass
class LayerGates:
    """The gates of one recurrent layer (one direction) for one input, in input time order."""

    layer: str
    direction: str  # "forward" or "backward"
    cell: str
    arrays: dict[str, np.ndarray]  # name -> (time, units)

    @property
    def label(self) -> str:
        return self.layer if self.direction == "forward" else f"{self.layer} (backward)"


def recurrent_layers(model) -> list:
    """The model's recurrent layers (LSTM, GRU, SimpleRNN or a Bidirectional wrapper), in order."""
    found = []
    for layer in model.layers:
        inner = getattr(layer, "forward_layer", layer)
        try:
            cell_kind(inner)
        except TypeError:
            continue
        found.append(layer)
    if not found:
        raise ConfigError(f"model {model.name!r} has no LSTM, GRU or SimpleRNN layer")
    return found


def inspect_gates(model, x) -> list[LayerGates]:
    """Every gate of every recurrent layer for one input (a batch of one).

    Each layer's input comes from a sub-model up to that layer; the NumPy reference must give
    back the layer's own output (within 1e-4), or a `RuntimeError` says it does not.
    """
    import keras

    from lstm_models.export import to_tensor

    found = recurrent_layers(model)
    wanted = []
    for layer in found:  # a masked layer's input is [x, mask] (text models: padding is masked)
        given = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input, None]
        wanted += [given[0], given[1] if len(given) > 1 else None, layer.output]
    probe = keras.Model(model.inputs, [t for t in wanted if t is not None])
    computed = iter(probe(to_tensor(x), training=False))
    tensors = [None if t is None else np.asarray(next(computed)) for t in wanted]
    out = []
    for k, layer in enumerate(found):
        inputs, mask, expected = tensors[3 * k: 3 * k + 3]
        if hasattr(layer, "forward_layer"):  # both directions, in the input's time order
            refs = run_bidirectional(layer, inputs, mask)
        else:
            refs = {"forward": run_reference(layer, inputs, mask)}
        kind = cell_kind(getattr(layer, "forward_layer", layer))
        got = []
        for direction, ref in refs.items():
            out.append(LayerGates(layer.name, direction, kind, {n: v[0] for n, v in ref.items()}))
            h = ref["h"]
            got.append(h if expected.ndim == 3 else h[:, -1] if direction == "forward" else h[:, 0])
        merged = np.concatenate(got, axis=-1)
        if merged.shape != expected.shape or not np.allclose(merged, expected, atol=1e-4):
            raise RuntimeError(f"layer {layer.name}: the NumPy reference does not reproduce its output")
    return out


def closed_steps(gates: list[LayerGates], labels: list[str], top: int = 3) -> list[str]:
    """Lines naming the steps where the forget gate (LSTM) or update gate (GRU) closed most."""
    lines = []
    for kind in dict.fromkeys(g.cell for g in gates):
        if kind in NOTES:
            lines.append(NOTES[kind])
    for g in gates:
        gate = _CLOSING_GATE.get(g.cell)
        if gate is None:
            continue
        mean = g.arrays[gate].mean(axis=1)
        order = np.argsort(mean, kind="stable")[:top]
        steps = ", ".join(f"step {t + 1} {labels[t]!r} (mean {gate} {mean[t]:.3f})" for t in order)
        name = "forget gate f" if gate == "f" else "update gate z"
        lines.append(f"{g.label}: the {name} closed most at {steps}")
    return lines


def write_csv(gates: list[LayerGates], labels: list[str], path: Path) -> Path:
    """One row per layer, direction, step and gate: its token or value, the mean and every unit."""
    width = max(g.arrays["h"].shape[1] for g in gates)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["layer", "direction", "cell", "step", "token", "gate", "mean",
                         *(f"unit_{u}" for u in range(width))])
        for g in gates:
            for t, label in enumerate(labels):
                for name in GATES[g.cell]:
                    row = g.arrays[name][t]
                    writer.writerow([g.layer, g.direction, g.cell, t + 1, label, name, f"{row.mean():.6g}",
                                     *(f"{v:.6g}" for v in row)])
    return path


def plot_gates(gates: list[LayerGates], labels: list[str], path: Path, title: str = "") -> Path:
    """A heatmap per gate (rows) and layer (columns): units down, steps along, tokens as ticks."""
    names = list(dict.fromkeys(n for g in gates for n in GATES[g.cell]))
    steps = len(labels)
    width = min(max(5.0, 1.5 + 0.28 * steps), 22.0)
    with figure(path, nrows=len(names), ncols=len(gates), figsize=(width * len(gates), 1.9 * len(names) + 1.0),
                dpi=100, squeeze=False) as (fig, axes):
        _draw_gates(fig, axes, gates, names, labels)
        if title:
            fig.suptitle(title)
    return path


def _draw_gates(fig, axes, gates: list[LayerGates], names: list[str], labels: list[str]) -> None:
    """One colour scale and one colorbar per row (a gate across the layers): 24 colorbars of their
    own took about a second of each figure's layout, and one scale compares the layers."""
    steps = len(labels)
    every = max(1, steps // 40)
    for row, name in enumerate(names):
        peak = max((float(np.abs(g.arrays[name]).max()) for g in gates if name in g.arrays), default=0.0) or 1.0
        lo, hi = _RANGES.get(name, (-peak, peak))
        cmap = "viridis" if lo == 0 else "RdBu_r"
        im = None
        for col, g in enumerate(gates):
            ax = axes[row][col]
            if name not in g.arrays:
                ax.axis("off")
                continue
            im = ax.imshow(g.arrays[name].T, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            if col == 0:
                ax.set_ylabel(f"{name}\nunit")
            if row == len(names) - 1:  # tokens under the last row only: ticks on every heatmap cost seconds
                ax.set_xticks(range(0, steps, every), labels[::every], rotation=90, fontsize=8)
            else:
                ax.set_xticks([])
            if row == 0:
                ax.set_title(f"{g.label} ({g.cell})")
        if im is not None:
            fig.colorbar(im, ax=axes[row][-1], fraction=0.025, pad=0.01)  # the scale of the whole row


def gates_report(model, x, labels: list[str], out: Path, title: str = "", stem: str = "gates") -> list[str]:
    """Inspect one input, write ``<stem>.csv`` and ``<stem>.png`` into ``out``; return the summary lines."""
    gates = inspect_gates(model, x)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(gates, labels, out / f"{stem}.csv")
    plot_gates(gates, labels, out / f"{stem}.png", title)
    return closed_steps(gates, labels)
