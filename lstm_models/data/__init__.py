"""Dataset loaders, chosen by a spec's ``dataset.kind``; each returns a splits object."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

from lstm_models.config import DataSpec
from lstm_models.data.adding import load_adding
from lstm_models.data.sentiment import load_sentiment
from lstm_models.data.series import load_series_csv, load_statsmodels
from lstm_models.data.splits import SequenceSplits, SeriesSplits, TextSplits
from lstm_models.data.text import load_imdb, load_text_csv, load_text_dir

Splits = Union[TextSplits, SeriesSplits, SequenceSplits]

LOADERS: dict[str, Callable[[DataSpec, Path], Splits]] = {
    "sentiment": load_sentiment,
    "imdb": load_imdb,
    "text_csv": load_text_csv,
    "text_dir": load_text_dir,
    "statsmodels": load_statsmodels,
    "series_csv": load_series_csv,
    "adding": load_adding,
}


def load_dataset(spec: DataSpec, cache_dir: Path) -> Splits:
    """Load the dataset a spec names; downloads go to ``cache_dir``."""
    return LOADERS[spec.kind](spec, Path(cache_dir))


__all__ = ["LOADERS", "Splits", "SequenceSplits", "SeriesSplits", "TextSplits", "load_dataset"]
