"""Durable state behind one narrow protocol: cursors, dedupe keys, ledgers, counters.

The protocol is in `base.py`; `open.py` opens the configured backend."""

from collector.state.base import Counts, StateStore

__all__ = ["Counts", "StateStore"]
