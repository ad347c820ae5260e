"""MLflow's database stores: a SQLite file's path, its tables created once, its write lock
retried; and the SQL store's code, loaded ahead of a process's first call."""

from __future__ import annotations

import time
from pathlib import Path


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


def make_client(uri: str, guard):
    """An `MlflowClient` on ``uri``; on SQLite, its tables created once and its lock retried (`_RetryLocked`)."""
    from mlflow.tracking import MlflowClient

    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    # Two sweeps starting at once on a new store would both create its tables.
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / f".{db.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)  # creates and migrates the tables
    return _RetryLocked(client, guard)


class _RetryLocked:
    """An `MlflowClient` on SQLite whose calls are retried while another process holds the write lock.

    Several processes (a sweep's workers, or two sweeps) write one SQLite file; SQLite refuses a
    write while another one holds the lock ("database is locked"). The refused transaction was
    rolled back whole, so running the call again writes it once: no run is lost or doubled. An
    interrupt waits until a call is done (``guard``): one raised inside MLflow's session could
    leave the write lock with this process, and every process's writes, its clean-up's too, wait.
    """

    TRIES = 12

    def __init__(self, client, guard):
        self._client, self._guard = client, guard

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            for attempt in range(self.TRIES):
                try:
                    with self._guard.hold():
                        return method(*args, **kwargs)
                except Exception as exc:  # MlflowException wrapping sqlalchemy's OperationalError
                    if "database is locked" not in str(exc) or attempt == self.TRIES - 1:
                        raise
                    time.sleep(min(0.1 * 2 ** attempt, 3.0))
        return call
