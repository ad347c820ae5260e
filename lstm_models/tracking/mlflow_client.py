"""The `MlflowClient` a tracker writes through. On a SQLite store: the file's path, its tables
created once, its write lock retried, the SQL store's code loaded ahead of a process's first call.
On a tracking server: its loss (`StoreLink`), turned into one `TrackingLost`.
"""

from __future__ import annotations

import functools
import re
import time
from contextlib import contextmanager
from pathlib import Path

from lstm_models.errors import TrackingLost


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for any other store."""
    return Path(tracking_uri[len("sqlite:///"):]) if tracking_uri.startswith("sqlite:///") else None


def store_missing(tracking_uri: str) -> bool:
    """A SQLite store whose file does not exist yet: it holds nothing, and asking would create it."""
    return sqlite_path(tracking_uri) is not None and not sqlite_path(tracking_uri).exists()


def default_artifact_root(tracking_uri: str) -> str | None:
    """``sqlite:///mlflow/mlflow.db`` keeps its artifacts in ``mlflow/artifacts`` beside it."""
    db = sqlite_path(tracking_uri)
    return None if db is None else (db.parent / "artifacts").resolve().as_uri()


def load_store_code() -> None:
    """Import MLflow's SQL store and map its tables, which a process's first client call on a
    database store does (about 1 s): a chief's local worker does it before its chief listens."""
    import sqlalchemy.orm
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: F401

    sqlalchemy.orm.configure_mappers()


class StoreLink:
    """Whether the tracking store still answers. MLflow's client retries a call to a server that
    does not answer for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, 7 by default), then raises;
    Keras Tuner took that for a failed trial, the next trial's every call waited as long again, and
    the sweep went on for tens of minutes printing tracebacks. Here the first such failure is a
    `TrackingLost`, and every later call through the link raises it at once."""

    def __init__(self, uri: str):
        self.uri = uri
        self.lost: str | None = None

    @contextmanager
    def calling(self):
        if self.lost is not None:
            raise TrackingLost(self.lost)
        try:
            yield
        except TrackingLost:
            raise
        except Exception as exc:
            reason = _transport_failure(exc)
            if reason is None:
                raise
            self.lost = f"tracking server {self.uri} stopped answering ({reason})"
            raise TrackingLost(self.lost) from None

    def call(self, method, *args, **kwargs):
        """``method(*args, **kwargs)`` through the link (`calling`)."""
        with self.calling():
            return method(*args, **kwargs)


class _Calls:
    """An `MlflowClient` whose every method call goes through ``around(method, *args, **kwargs)``."""

    def __init__(self, client, around):
        self._client, self._around = client, around

    def __getattr__(self, name):
        method = getattr(self._client, name)
        return functools.partial(self._around, method) if callable(method) else method


def _transport_failure(exc: BaseException) -> str | None:
    """Why a call could not reach the server (``Connection refused``, a timeout, retries used up
    on 5xx answers), or None for any other error, an HTTP error answer among them (a missing
    artifact's 404, a refused 403): the first such `requests` error in the exception's chain."""
    import requests

    lost = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError)
    seen = exc
    while seen is not None and not isinstance(seen, lost):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    text = str(seen)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text) or re.search(r"Caused by \w+\('([^']+)'", text)
    return found.group(1).strip() if found else type(seen).__name__


def make_client(uri: str, guard, link: StoreLink | None = None):
    """An `MlflowClient` on ``uri``: a server's through ``link``; on SQLite, its tables created once
    and its lock retried (`_RetryLocked`)."""
    from mlflow.tracking import MlflowClient

    db = sqlite_path(uri)
    if db is None:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return _Calls(client, link.call) if link is not None else client
    # Two sweeps starting at once on a new store would both create its tables.
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / f".{db.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)  # creates and migrates the tables
    return _Calls(client, _RetryLocked(guard))


class _RetryLocked:
    """A call to an `MlflowClient` on SQLite, retried while another process holds the write lock.

    Several processes (a sweep's workers, or two sweeps) write one SQLite file; SQLite refuses a
    write while another one holds the lock ("database is locked"). The refused transaction was
    rolled back whole, so running the call again writes it once: no run is lost or doubled. An
    interrupt waits until a call is done (``guard``): one raised inside MLflow's session could
    leave the write lock with this process, and every process's writes, its clean-up's too, wait.
    """

    TRIES = 12

    def __init__(self, guard):
        self._guard = guard

    def __call__(self, method, *args, **kwargs):
        for attempt in range(self.TRIES):
            try:
                with self._guard.hold():
                    return method(*args, **kwargs)
            except Exception as exc:  # MlflowException wrapping sqlalchemy's OperationalError
                if "database is locked" not in str(exc) or attempt == self.TRIES - 1:
                    raise
                time.sleep(min(0.1 * 2 ** attempt, 3.0))
