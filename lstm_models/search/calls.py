"""A worker's calls to its chief's oracle: signed with the worker's id, patient, and its heartbeat.

Keras Tuner's `OracleClient` (the worker's oracle) sends its calls through the stub it holds;
`release_calls` wraps that stub once. Every call then carries the worker's id as gRPC metadata
(``WORKER_KEY``: Keras Tuner's requests for a trial's epochs and end name the trial, not who sends
them), so that the chief refuses a worker it gave up as dead about a trial that went to another
(`lstm_models.search.service`); and a call from the main thread ends on an interrupt once its
chief has not answered for PATIENCE seconds.
"""

from __future__ import annotations

import threading

WORKER_KEY = "lstm-models-worker"  # the gRPC metadata key of the calling worker's id
PATIENCE = 10.0  # seconds a worker's call waits for its chief before an interrupt may end it


class Heartbeat:
    """A worker's heartbeat: asks the chief for the running trial every ``every`` seconds."""

    def __init__(self, oracle, trial_id: str, every: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(oracle, trial_id, every), daemon=True)
        self._thread.start()

    def _beat(self, oracle, trial_id: str, every: float) -> None:
        while not self._stop.wait(every):
            try:
                oracle.get_trial(trial_id)
            except Exception:  # the chief is restarting: the next beat reaches it
                pass

    def stop(self) -> None:
        self._stop.set()


def release_calls(client, guard) -> None:
    """Sign a worker's calls to its chief with its id (Keras Tuner's client's ``tuner_id``), and let
    those from the main thread (not the heartbeat's) end on an interrupt once unanswered for
    PATIENCE seconds (`Deferral.give_up`). The tuner holds interrupts while it asks for a trial and
    ends one, so that the oracle, the run and the state file agree; a chief answers in
    milliseconds, but a gone one never does (Keras Tuner's client waits an hour)."""
    client.stub = _Patient(client.stub, guard, client.tuner_id)


class _Patient:
    def __init__(self, stub, guard, worker: str):
        self._stub, self._guard, self._metadata = stub, guard, ((WORKER_KEY, worker),)

    def __getattr__(self, name):
        method = getattr(self._stub, name)
        if threading.current_thread() is not threading.main_thread():
            return lambda request, **kwargs: method(request, metadata=self._metadata, **kwargs)

        def call(request, **kwargs):
            import grpc

            future, waited = method.future(request, metadata=self._metadata, **kwargs), 0.0
            try:
                while True:
                    try:
                        return future.result(timeout=1.0)
                    except grpc.FutureTimeoutError:
                        waited += 1.0
                        if waited >= PATIENCE:
                            self._guard.give_up()
            except BaseException:
                future.cancel()
                raise

        return call


def leave_chief(client) -> None:
    """A worker told that the search is over closes its connection to the chief's oracle now (a
    local worker lives on to train the verdict): else the chief, stopping its service, cancels
    the connection, and gRPC logs that in the worker (``Got goaway``)."""
    client.stub = None  # Keras Tuner's `OracleClient` holds its channel only through its stub
