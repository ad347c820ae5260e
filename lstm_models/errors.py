"""The error policy: what stops a run (one line, exit 2), what ends a search, what fails one trial.

`ConfigError` and `DataError` stop the run before anything is written and the CLI turns them
into one line on stderr with exit code 2; `SweepFailed` stops a sweep that cannot go on.
`TrackingLost` stops a run whose tracking server went away.
`TrialFailed` marks one trial FAILED and the sweep goes on. `SearchDone` ends the search
before a new trial (trial limit or time budget); `Interrupted` is a signal turned into an
exception (exit 128 + the signal number).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


class LstmModelsError(Exception):
    """Base class of the errors that stop a run with a one-line message."""


class ConfigError(LstmModelsError):
    """A sweep spec or a command-line value is wrong. The message names file, key and value."""


class DataError(LstmModelsError):
    """A dataset cannot be read or does not fit the spec. The message names file and field."""


class SweepFailed(LstmModelsError):
    """The search could not go on (e.g. three trials failed in a row, or none finished)."""


class TrackingLost(LstmModelsError):
    """The tracking server stopped answering mid-run (after MLflow's own retries): the run stops,
    its state kept (a sweep is resumed once the server answers again)."""


class TrialFailed(Exception):
    """One trial could not be trained (NaN loss, build error); the sweep continues."""


class SearchDone(Exception):
    """Raised before a new trial once the sweep's trial limit or time budget is reached."""


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by a signal; ``exit_code`` is 128 + the signal number.

    A `KeyboardInterrupt`, so that it passes every ``except Exception`` (Keras Tuner turns
    those into failed trials) and is treated like Ctrl-C everywhere.
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(signal.Signals(self.signum).name)


def check_writable(folder: Path, what: str) -> None:
    """The nearest existing folder at or above ``folder`` must be a writable folder.

    Raises:
        ConfigError: naming ``what`` and the folder that is a file or not writable.
    """
    probe = Path(folder).resolve()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{what}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: {probe} is not writable")
