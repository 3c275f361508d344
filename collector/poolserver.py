"""The worker pool's forkserver (collector/workers.py), and its early start.

The forkserver imports the processors' code and loads the anonymizer's lexicon
(collector/workerboot.py): about half a second of CPU before the first worker exists. Started at
the very beginning of the commands that run the service, it does that on another core while the
service imports its own modules and reads its config, instead of after them. This module
imports nothing heavy, so the start really is early.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from collections.abc import Sequence
from multiprocessing.context import ForkServerContext

# What the forkserver imports before it forks a worker.
PRELOAD = ["collector.workerboot"]
# The commands that run the service, and with it (in process mode) the pool: `reprocess` runs
# it once over the raw archive.
SERVICE_COMMANDS = frozenset({"run", "once", "reprocess"})


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def context() -> ForkServerContext:
    """The multiprocessing context the pool starts its workers with."""
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(PRELOAD)
    return forkserver


def start_early(argv: Sequence[str]) -> bool:
    """Start the forkserver now if `argv` runs the service on more than one core, where
    `service.worker_mode = "auto"` (the default) takes processes. A config that asks for
    threads leaves it unused: it exits with this process. Whether it was started."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command not in SERVICE_COMMANDS or usable_cores() < 2:
        return False
    context()
    multiprocessing.forkserver.ensure_running()
    return True
