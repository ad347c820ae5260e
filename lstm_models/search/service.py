"""Keras Tuner's oracle as a gRPC service: the chief serves its oracle (`lstm_models.search.oracle`),
and a worker joins it.

Part of the Keras Tuner adapter (with `lstm_models.search.tuner` and `lstm_models.search.oracle`):
the modules that use private Keras Tuner members, each naming the public gap it fills. Keras
Tuner's own service takes a worker's calls by trial id only; here a worker's epoch report, end
and heartbeat go through the oracle's ``signed_`` methods with the worker's id
(`lstm_models.search.calls`), so a worker given up on that comes back changes nothing.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from lstm_models.errors import ConfigError


def join_chief(host: str, port: str, worker: str) -> None:
    """Make this process's tuners workers of the chief at ``host:port`` (Keras Tuner reads that from the environment)."""
    os.environ.update(KERASTUNER_TUNER_ID=worker, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=str(port))
    _quiet_conditions()


def _quiet_conditions() -> None:
    """keras-tuner 1.4.8's ``Parent.to_proto`` prints a condition's first value (a stray debug
    print) each time a conditional hyperparameter crosses gRPC; its output is dropped here."""
    import contextlib
    import io

    # Private `keras_tuner.src.engine.conditions`: the class has no public import path.
    from keras_tuner.src.engine import conditions

    original = conditions.Parent.to_proto
    if getattr(original, "quiet", False):
        return

    def to_proto(self):
        with contextlib.redirect_stdout(io.StringIO()):
            return original(self)

    to_proto.quiet = True
    conditions.Parent.to_proto = to_proto


def serve_oracle(oracle, host: str, port: int, done: Callable[[], bool],
                 stopping: Callable[[], None] = lambda: None) -> None:
    """Serve ``oracle`` to workers over gRPC until ``done()`` (Keras Tuner's own chief loop waits in 20 s
    steps and never notices a dead worker); ``stopping()`` runs before the service stops, however it ends
    (the chief stops its local workers there, so that none is left waiting on a gone oracle)."""
    from concurrent import futures

    import grpc
    # Private `keras_tuner.src`: the oracle's gRPC service has no public import path.
    from keras_tuner.src import protos

    _quiet_conditions()
    oracle.verbose = 0  # Keras Tuner's own trial tables: the workers print our progress lines
    # No SO_REUSEPORT (gRPC's default): a second chief on this port would share out its workers' calls.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=[("grpc.so_reuseport", 0)])
    protos.get_service_grpc().add_OracleServicer_to_server(_signed_servicer(oracle), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio raises where older releases returned 0
        bound = 0
    if not bound:
        raise ConfigError(f"--chief {host}:{port}: cannot listen there (the port is in use, or not this machine's)")
    server.start()
    try:
        while not done():
            time.sleep(0.5)
    finally:
        try:
            stopping()
        finally:
            server.stop(grace=None)


def _signed_servicer(oracle):
    """Keras Tuner's gRPC service of ``oracle`` (a `Watched` one), where a worker's epoch, end and
    heartbeat go through the ``signed_`` methods with the worker's id (`lstm_models.search.calls`)."""
    # Private `keras_tuner.src`: the service and its messages have no public import path.
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer
    from keras_tuner.src.engine.trial import Trial

    from lstm_models.search.calls import WORKER_KEY

    worker = lambda context: dict(context.invocation_metadata()).get(WORKER_KEY)  # noqa: E731 (who signed the call)
    class Signed(OracleServicer):
        def UpdateTrial(self, request, context):
            trial = oracle.signed_update(worker(context), request.trial_id, request.metrics, step=request.step)
            return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())

        def EndTrial(self, request, context):
            oracle.signed_end(worker(context), Trial.from_proto(request.trial))
            return protos.get_service().EndTrialResponse()

        def GetTrial(self, request, context):
            trial = oracle.signed_get(worker(context), request.trial_id)
            return protos.get_service().GetTrialResponse(trial=trial.to_proto())

    return Signed(oracle)
