"""Which part this sweep command plays: one process, a chief with local workers, or a worker.

The flags (``--workers N``, ``--chief HOST:PORT``, ``--worker HOST:PORT``) say it; without them a
``--resume`` continues a sweep the way it ran, and a new sweep takes its spec's ``tuner.workers``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from lstm_models.errors import ConfigError
from lstm_models.tracking.tracker import NO_TRACKING


def settle_workers(args: argparse.Namespace, spec_workers: int, folder: Path) -> None:
    """Set ``args.workers`` where the flags leave it open: as the resumed sweep ran, else the spec's."""
    if not _resume_as_it_ran(args, folder):
        _spec_workers(args, spec_workers)


def check_roles(args: argparse.Namespace) -> None:
    """The role flags, checked before anything is read or written: one line for each bad one."""
    from lstm_models.search.worker import parse_address
    from lstm_models.tracking.server import is_public

    if args.workers is not None and not 0 <= args.workers <= 64:
        raise ConfigError(f"--workers must be an int in [0, 64] (0: this one process). Got {args.workers} instead.")
    roles = [flag for flag, given in (("--workers", args.workers), ("--chief", args.chief)) if given]
    if args.worker and roles:
        raise ConfigError(f"--worker with {roles[0]}: a process is a chief or a worker, not both")
    if (roles or args.worker) and args.tracking_uri == NO_TRACKING:
        raise ConfigError(f"{(roles or ['--worker'])[0]} with --tracking-uri none: workers report their trials "
                          "through MLflow; give a sqlite:/// URI on one machine, an http:// server across hosts")
    if args.verdict_jobs and not args.worker:
        raise ConfigError("--verdict-jobs: a chief gives it to its local workers, with --worker; not for other commands")
    if args.worker and not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", args.worker_id):
        raise ConfigError(f"--worker-id {args.worker_id!r}: expected 1-128 letters, digits, '.', '_' or '-'")
    if args.chief:
        host, _ = parse_address("--chief", args.chief)
        if is_public(host):
            if not args.allow_public:
                raise ConfigError(f"--chief {args.chief}: not a loopback address; Keras Tuner's oracle service has "
                                  "no authentication, so binding it needs --allow-public (on a private network only)")
            _warn_public(args.chief)


def _warn_public(address: str) -> None:
    print(f"warning: the oracle listens on {address}; anyone who reaches that port can take or end "
          "trials: keep it on a private network", file=sys.stderr, flush=True)


def _resume_as_it_ran(args: argparse.Namespace, folder: Path) -> bool:
    """``--resume`` continues a sweep the way it ran: one a chief ran, without ``--workers`` or
    ``--chief``, by a chief with as many local workers on the same address (a public one was
    allowed when the sweep started: its remote workers reconnect there); one that ran in one
    process, in one process. Return whether there was a sweep to resume. (A broken state is
    reported later, by the start checks.)"""
    from lstm_models.search.state import STATE_FILE, load_state
    from lstm_models.search.worker import parse_address
    from lstm_models.tracking.server import is_public

    if not args.resume or args.worker or not (folder / STATE_FILE).exists():
        return False
    try:
        state = load_state(folder)
    except ConfigError:
        return True
    if not state.oracle and (args.workers or args.chief):
        raise ConfigError(f"--resume: the sweep in {folder} ran in one process; resume it without "
                          f"{'--workers' if args.workers else '--chief'}, or start a new sweep with --fresh")
    if state.oracle and args.workers == 0:
        raise ConfigError(f"--resume --workers 0: the sweep in {folder} ran with a chief; resume it with "
                          "--workers N or --chief, or start a new sweep with --fresh")
    if state.oracle and not (args.workers or args.chief):
        args.workers, args.chief = state.workers or None, state.oracle
        print(f"--resume: the sweep's chief served {state.oracle} with {state.workers} local workers; resuming it "
              "so (--workers N, --chief HOST:PORT for others)", flush=True)
        if is_public(parse_address("--chief", state.oracle)[0]):
            args.allow_public = True
            _warn_public(state.oracle)
    return True


def _spec_workers(args: argparse.Namespace, workers: int) -> None:
    """A new sweep whose command line names no role (``--workers``, ``--chief``, ``--worker``)
    runs on the spec's ``tuner.workers`` local workers."""
    if not workers or args.workers is not None or args.chief or args.worker:
        return
    if args.tracking_uri == NO_TRACKING:
        print(f"{args.spec}: tuner.workers {workers} left aside: with --tracking-uri none the sweep runs in this "
              "one process (workers report their trials through MLflow)", flush=True)
        return
    args.workers = workers
    print(f"{args.spec}: tuner.workers {workers}: a chief and {workers} local worker processes "
          "(--workers 0 for one process)", flush=True)


def worker_plan(args: argparse.Namespace, argv: list[str]):
    """The chief's plan (``--workers N``, ``--chief HOST:PORT``): its own workers get this command
    line, less the chief's flags."""
    if not args.workers and not args.chief:
        return None
    from lstm_models.search.chief import WorkerPlan, gpu_ids
    from lstm_models.search.worker import parse_address

    skip, rest = {"--workers": 1, "--chief": 1, "--fresh": 0, "--resume": 0, "--allow-public": 0}, []
    it = iter(argv)
    for a in it:
        if a.split("=")[0] in skip:
            if "=" not in a and skip[a]:
                next(it, None)
            continue
        rest.append(a)
    host, port = parse_address("--chief", args.chief) if args.chief else ("127.0.0.1", 0)
    return WorkerPlan(args.workers or 0, tuple(rest), dict(os.environ), os.cpu_count() or 1,
                      gpu_ids(dict(os.environ)), host, port)
