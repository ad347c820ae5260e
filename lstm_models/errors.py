"""The errors a user can cause, and the one a trial can cause.

`ConfigError` and `DataError` stop the run before anything is written and the CLI turns them
into one line on stderr with exit code 2; `SweepFailed` stops a sweep that cannot go on.
`TrialFailed` marks one trial FAILED and the sweep goes on.
"""


class LstmModelsError(Exception):
    """Base class of the errors that stop a run with a one-line message."""


class ConfigError(LstmModelsError):
    """A sweep spec or a command-line value is wrong. The message names file, key and value."""


class DataError(LstmModelsError):
    """A dataset cannot be read or does not fit the spec. The message names file and field."""


class SweepFailed(LstmModelsError):
    """The search could not go on (e.g. three trials failed in a row, or none finished)."""


class TrialFailed(Exception):
    """One trial could not be trained (NaN loss, build error); the sweep continues."""
