"""Which process, among all, owns something (a worker's trial run, a staged export), and ending
the processes a chief started.

A host name and a pid do not say it (cloned machines share a name, containers share a kernel,
pids are reused); Linux's boot id, pid namespace, pid and start time do.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def process_identity(pid: int) -> str:
    """``boot/pid namespace/pid/start``: one process among all, ever; '' if the process is gone
    (a zombie too: it has ended, its parent has not reaped it yet), or without Linux's /proc."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if len(stat) < 20 or stat[0] == "Z" else f"{boot}/{namespace}/{pid}/{stat[19]}"


def process_gone(identity: str) -> bool:
    """Whether the process of ``identity`` (`process_identity`) ran on this machine, in this pid
    namespace, and has ended. Another machine's or container's process may be alive: not gone."""
    owner, here = identity.split("/"), process_identity(os.getpid()).split("/")
    if len(owner) != 4 or len(here) != 4 or owner[:2] != here[:2] or not owner[2].isdigit():
        return False
    return process_identity(int(owner[2])) != identity


def end_processes(procs) -> None:
    """SIGTERM to those still running (each closes its run on it), SIGKILL to one still there after 60 s."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        proc.terminate()
    for proc in running:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
