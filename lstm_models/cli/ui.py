"""``lstm-models ui``: the link to each experiment's runs table, then the MLflow UI on loopback.

The links come first (`lstm_models.tracking.links`: MLflow 3.17 opens an experiment in its
GenAI view, not in the runs table). Then ``mlflow ui`` replaces this process, so Ctrl-C reaches
it directly. An ``http://`` tracking URI is a server that serves its own UI: the links point
there and nothing is started.
"""

from __future__ import annotations

import argparse
import os
import sys

from lstm_models.errors import ConfigError
from lstm_models.tracking.tracker import NO_TRACKING


def cmd_ui(args: argparse.Namespace) -> int:
    from lstm_models.tracking.links import experiments, runs_links
    from lstm_models.tracking.mlflow_client import sqlite_path
    from lstm_models.tracking.mlflow_store import MLflowTracker
    from lstm_models.tracking.server import check_ipv4, check_port_free, is_public

    uri = args.tracking_uri
    if uri == NO_TRACKING:
        raise ConfigError("--tracking-uri none: nothing is tracked, so there is no UI to open")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in [1, 65535]. Got {args.port} instead.")
    check_ipv4("--host", args.host)
    if is_public(args.host):
        raise ConfigError(f"--host {args.host}: the MLflow UI has no authentication, so it listens on loopback "
                          "only; for other machines run lstm-models tracking-server --auth")
    server = uri.startswith(("http://", "https://"))
    tracker = MLflowTracker(uri)
    tracker.check()
    base = uri.rstrip("/") if server else f"http://{args.host}:{args.port}"
    found = experiments(tracker)
    for line in runs_links(found, base):
        print(line)
    if not found:
        print(f"no experiments in {uri} yet: lstm-models sweep SPEC --tracking-uri {uri} tracks one there")
    if server:
        print(f"{uri} is a tracking server: it serves this UI itself")
        return 0
    if args.links_only:
        return 0
    check_port_free(args.host, args.port, "--host/--port")
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]
    print(f"MLflow UI on {base} (Ctrl-C stops it)", flush=True)
    sys.stderr.flush()
    os.execv(sys.executable, command)  # returns only by raising OSError
