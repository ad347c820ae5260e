"""Reading the files users bring: UTF-8 text and CSV/TSV tables, with errors that name the line.

A message names the line of the file a row starts on, as an editor numbers lines: the first
line (the header row, when there is one) is line 1, and blank lines count, so the number is the
same whether a blank line is read as a row or skipped.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lstm_models.errors import DataError

# Cells read as missing in a series (never in a text: there an empty cell is an empty text).
MISSING = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
_BREAK = r"\r\n|\r|\n"  # what ends a line for pandas's CSV reader


def read_text(path: Path, what: str = "file", sep: str | None = None, header: bool = False) -> str:
    """The whole file as text, or a `DataError` naming the file and the row of a bad byte.

    With ``sep`` (a table), the message names the column too: by its header name when the
    first row has one, else by its 0-based position.
    """
    if not path.exists():
        raise DataError(f"{path}: no such {what}")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # its byte-order mark: every other byte would be reported
        raise DataError(f"{path}: the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = raw[:exc.start].count(b"\n") + 1
        column = ""
        if sep is not None:
            line_start = raw.rfind(b"\n", 0, exc.start) + 1
            position = raw[line_start:exc.start].count(sep.encode())
            names = raw.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r").split(sep) if header else []
            column = f", column {names[position]!r}" if position < len(names) else f", column {position}"
        raise DataError(f"{path}: line {row}{column}: bytes that are not UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                        f"{exc.start}); save the file as UTF-8") from None


def default_sep(path: Path, sep: str | None) -> str:
    """The spec's separator, or tab for ``.tsv`` and comma otherwise."""
    if sep is not None:
        return sep
    return "\t" if path.suffix.lower() == ".tsv" else ","


def read_table(path: Path, sep: str | None, header: bool, keep_blank: bool = False) -> pd.DataFrame:
    """A CSV or TSV file, every cell a string; columns are names, or 0-based positions without header.

    The frame's index is the line each row starts on (see the module docstring). A blank line
    between rows is a row of empty cells with ``keep_blank`` (a step of a series), else skipped;
    blank lines before the first row and after the last are never rows.
    """
    text = read_text(path, sep=default_sep(path, sep), header=header)
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    above = re.match(rf"(?:[^\S\r\n]*(?:{_BREAK}))*", text).group()  # blank lines above the first row
    try:
        frame = pd.read_csv(io.StringIO(text[len(above):]), sep=default_sep(path, sep), header=0 if header else None,
                            dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False)
    except (pd.errors.ParserError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[-1]
        raise DataError(f"{path}: cannot be read as {'TSV' if default_sep(path, sep) == chr(9) else 'CSV'}: "
                        f"{detail}") from None
    first = len(re.findall(_BREAK, above)) + 1
    if header:
        _names_once(path, text[len(above):], default_sep(path, sep))
        first += 1 + sum(len(re.findall(_BREAK, str(c))) for c in frame.columns)  # a quoted name may span lines
        frame.columns = [str(c) for c in frame.columns]
    spans = 1 + frame.apply(lambda col: col.str.count(_BREAK)).sum(axis=1).to_numpy(dtype=int)
    starts = first + np.cumsum(spans) - spans
    lines = re.split(_BREAK, text)
    blank = np.array([start > len(lines) or not lines[start - 1].strip() for start in starts], dtype=bool)
    keep = np.arange(len(frame)) <= (np.flatnonzero(~blank)[-1] if (~blank).any() else -1)
    if not keep_blank:
        keep &= ~blank
    frame = frame[keep]
    frame.index = pd.Index(starts[keep], name="line")
    return frame


def _names_once(path: Path, text: str, sep: str) -> None:
    """A header that names a column twice: pandas would read the second as 'name.1', and the spec's
    column would silently be the first."""
    names = pd.read_csv(io.StringIO(text), sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False,
                        na_filter=False).iloc[0].tolist()
    for i, name in enumerate(names):
        if name in names[:i]:
            raise DataError(f"{path}: the header row names column {name!r} twice (columns {names.index(name) + 1} "
                            f"and {i + 1}); give each column its own name")


def find_column(frame: pd.DataFrame, path: Path, column: str | int, key: str, header: bool) -> str | int:
    """Check that ``column`` exists and return it; the message lists what the file has."""
    if column in frame.columns:
        return column
    if header:
        shown = ", ".join(repr(c) for c in list(frame.columns)[:12])
        hint = (" (if the file has no header row, set header: false and give 0-based positions)"
                if isinstance(column, str) else "")
        raise DataError(f"{path}: no column {column!r} ({key}); the header row has {shown}{hint}")
    raise DataError(f"{path}: no column {column} ({key}); rows have {len(frame.columns)} columns, "
                    f"positions 0 to {len(frame.columns) - 1}")


def column_label(column: str | int) -> str:
    """How a column is named in messages: 'text' or 2 (a position)."""
    return repr(column) if isinstance(column, str) else str(column)


def check_digest(path: Path, algorithm: str, expected: str) -> None:
    """A downloaded file must be the one we know: else `DataError` asks to delete it."""
    digest = hashlib.new(algorithm, path.read_bytes()).hexdigest()
    if digest != expected:
        raise DataError(f"{path}: {algorithm} {digest} does not match the expected {expected}; delete the file")
