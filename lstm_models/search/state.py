"""The state of one sweep on disk, so that an interrupted or killed sweep can be resumed.

A sweep's folder (``runs/<sweep name>/`` from the CLI) holds:

- ``sweep.json``: the parent run, the tracking URI, the resolved spec, whether the sweep
  finished, and one record per trial (number, run id, status, objective ...). It is rewritten
  whole (`write_whole`), so it is never half-written;
- ``tuner/``: Keras Tuner's project (its oracle, its trials, their best checkpoints), whose JSON
  files are written whole too (`lstm_models.search.tuner`);
- ``lock``: held (``flock``) while a process runs the sweep; the kernel releases it when that
  process dies, even by ``kill -9``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lstm_models.errors import ConfigError

STATE_FILE = "sweep.json"
TUNER_PROJECT = "tuner"
ORACLE_FILE = "oracle.json"  # Keras Tuner's oracle state, in the TUNER_PROJECT folder
LOCK_FILE = "lock"
SEARCHING, FINISHED = "searching", "finished"
# Settings that may change between an interrupted sweep and its resume.
# Changes that leave every trial as it was: a resumed sweep or a joining worker may differ in them.
RESUMABLE_CHANGES = ("tuner.max_trials", "tuner.time_budget", "verdict.seeds", "verdict.match", "pruning.kind",
                     "pruning.warmup_trials", "pruning.warmup_epochs")


@dataclass
class SweepState:
    """What ``sweep.json`` records."""

    name: str
    parent_run_id: str
    tracking_uri: str
    spec: dict[str, Any]
    status: str = SEARCHING
    started: float = field(default_factory=time.time)
    trials: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id (trial number without one) -> record
    oracle: str = ""  # HOST:PORT where a chief served its oracle: a resumed chief serves it there again
    workers: int = 0  # how many local workers that chief started: --resume starts as many again
    data: str = ""  # the data's fingerprint (`TextSplits.digest` ...): --resume refuses other data

    def describe(self) -> str:
        counts: dict[str, int] = {}
        for record in self.trials.values():
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        detail = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        parent = f", parent run {self.parent_run_id}" if self.parent_run_id else ""
        return f"{len(self.trials)} of {self.spec['tuner']['max_trials']} trials ({detail or 'none run'}){parent}"


def has_state(folder: Path) -> bool:
    """Whether ``folder`` holds a sweep (its state file or a Keras Tuner project)."""
    folder = Path(folder)
    return (folder / STATE_FILE).exists() or (folder / TUNER_PROJECT).exists()


def load_state(folder: Path) -> SweepState:
    path = Path(folder) / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        state = SweepState(**raw)
        if any("trial_id" not in rec for rec in state.trials.values()):
            raise ValueError("its trial records come from an older lstm-models")
        return state
    except FileNotFoundError:
        raise ConfigError(f"{path}: no sweep state to resume (the sweep never started a trial here)") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable sweep state ({exc}); start again with --fresh") from None


def write_whole(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, renamed over it: a reader, or
    a resume after a ``kill -9`` in mid-write, finds the old file or the new one, never a part.

    The temporary name is the process's and the thread's own (an oracle serving workers writes
    from several threads); a leftover one, from a process killed before its rename, is a dot file
    that nothing reads.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_state(folder: Path, state: SweepState) -> None:
    """Write ``sweep.json`` whole."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_whole(folder / STATE_FILE, json.dumps(asdict(state), indent=1) + "\n")


def spec_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose values differ between two resolved specs, as ``a.b: old -> new``."""
    out = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += spec_changes(a, b, name + ".")
        elif a != b and name not in RESUMABLE_CHANGES:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out


class SweepLock:
    """An exclusive ``flock`` on ``folder/lock`` for as long as this process runs the sweep."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
        self._fh = None

    def acquire(self) -> "SweepLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise ConfigError(f"{self.path.parent}: this sweep is running right now ({holder}); "
                              "wait for it or stop it first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None

    def __enter__(self) -> "SweepLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def is_locked(folder: Path) -> bool:
    """Whether a live process holds the sweep in ``folder``."""
    import fcntl

    path = Path(folder) / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "r", encoding="utf-8") as fh:  # a probe: the file is not rewritten
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
    return False


def check_start(folder: Path, spec: dict[str, Any], tracking_uri: str, resume: bool = False,
                fresh: bool = False, data: str = "") -> SweepState | None:
    """Decide, writing nothing, whether a sweep may start in ``folder``.

    Args:
        folder: the sweep's state folder.
        spec: the resolved spec (``SweepSpec.to_dict()``), command-line overrides applied.
        tracking_uri: where this run would track (``none`` for no tracking).
        resume: continue the sweep recorded there.
        fresh: start a new sweep, replacing the one recorded there (its runs stay in MLflow).
        data: the fingerprint of the data this run loaded.

    Returns:
        The state to resume (``resume``), the state ``fresh`` replaces, or None.

    Raises:
        ConfigError: a sweep exists and neither flag was given; there is nothing to resume; it
            finished already; it is running; the spec, the data or the tracking URI differ; a file of its
            Keras Tuner project is unreadable.
    """
    folder = Path(folder)
    if resume and fresh:
        raise ConfigError("--resume and --fresh exclude each other: --resume continues a sweep, --fresh starts a new one")
    exists = has_state(folder)
    if exists and is_locked(folder):
        SweepLock(folder).acquire()  # raises the "running right now" error
    if not resume:
        if exists and not fresh:
            raise ConfigError(
                f"{folder}: a sweep of {spec['name']} exists already ({_describe(folder)}). "
                "Continue it with --resume, or start a new sweep with --fresh (its runs stay in MLflow)."
            )
        if not exists:
            return None
        try:
            return load_state(folder)
        except ConfigError:
            return None  # unreadable: --fresh replaces it all the same
    if not exists:
        raise ConfigError(f"{folder}: no sweep of {spec['name']} to resume; run without --resume to start one")
    state = load_state(folder)
    if state.status == FINISHED:
        raise ConfigError(f"{folder}: the sweep of {spec['name']} finished already ({state.describe()}); "
                          "nothing to resume. Start a new sweep with --fresh.")
    if state.tracking_uri != tracking_uri:
        raise ConfigError(f"{folder}: this sweep is tracked in {state.tracking_uri}, not {tracking_uri}; "
                          f"resume it with --tracking-uri {state.tracking_uri}")
    changes = spec_changes(state.spec, spec)
    if changes:
        raise ConfigError(f"{folder}: the spec changed since this sweep started ({'; '.join(changes[:3])}); "
                          "resume with the same spec and flags, or start a new sweep with --fresh")
    if state.data and state.data != data:  # a file edited in between: its classes, rows, values
        raise ConfigError(f"{folder}: the data changed since this sweep started (fingerprint {state.data}, now "
                          f"{data}); resume with the data it started with, or start a new sweep with --fresh")
    _check_tuner_files(folder / TUNER_PROJECT)
    return state


def _check_tuner_files(project: Path) -> None:
    # Keras Tuner's reload would stop on a damaged file with a bare JSONDecodeError. Ours are
    # written whole; one damaged otherwise (a full disk, a sweep of an older lstm-models) is named.
    for path in sorted(project.glob("*.json")) + sorted(project.glob("trial_*/trial.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable Keras Tuner state ({exc}); start again with --fresh") from None


def _describe(folder: Path) -> str:
    try:
        return load_state(folder).describe()
    except ConfigError:
        return "no readable sweep.json"


def discard(folder: Path) -> None:
    """Delete a sweep's state, tuner project and checkpoints. Its MLflow runs are kept.

    The lock file stays: the caller holds its ``flock``, and deleting it would let another
    process lock a new file of the same name while this one still runs the sweep.
    """
    for entry in Path(folder).iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def still_training(oracle_file: Path, running: set[str]) -> dict[str, str]:
    """Worker -> trial id: the trials an interrupted chief's oracle had handed out (its saved
    ``ongoing_trials``) whose runs are still ``running``: their workers may still train them, and
    reconnect to the resumed chief."""
    try:
        saved = json.loads(Path(oracle_file).read_text(encoding="utf-8")).get("ongoing_trials", {})
    except (OSError, ValueError):
        return {}
    return {worker: trial_id for worker, trial_id in saved.items() if trial_id in running}
