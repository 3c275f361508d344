"""Named moments where a crash would hurt most, which something outside the service may watch.

The uploader passes "after_commit" (a commit landed, the ledger does not know it yet) and an
erasure passes "forget_after_remember", "forget_before_commit" and "forget_after_commit". In the
service nothing watches, and a moment is an empty loop. The exactly-once tests run the service
through tests/daemon_process.py, which watches the moments of its subprocess and kills it with
SIGKILL at one of them, as a power cut or the OOM killer would.
"""

from __future__ import annotations

from collections.abc import Callable

Watcher = Callable[[str], None]
WATCHERS: list[Watcher] = []


def passed(moment: str) -> None:
    for watcher in WATCHERS:
        watcher(moment)
