"""Test-only crash points: `RESUME_COLLECTOR_CRASH_AT=after_commit` kills the process there.

The exactly-once tests use them to die at the worst moments (a commit landed, the ledger does
not know yet) with SIGKILL, as a power cut or the OOM killer would.
"""

from __future__ import annotations

import os
import signal

ENV = "RESUME_COLLECTOR_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
