"""One look for every figure: the cell colours, and saving a figure without leaking it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

CELL_COLOURS = {"lstm": "tab:blue", "gru": "tab:orange", "rnn": "tab:green"}


@contextmanager
def figure(path: Path, **subplots):
    """``with figure(path, figsize=(7, 4)) as (fig, axes):`` draws, saves to ``path`` and closes.

    Matplotlib runs headless (Agg); the figure is closed even when drawing fails, so a long
    sweep never accumulates open figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, pil_kwargs={"compress_level": 1})  # zlib's fastest: 6 took 2 s on a gate heatmap
    finally:
        plt.close(fig)
