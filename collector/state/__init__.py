"""Durable state behind one narrow protocol: cursors, dedupe keys, ledgers, counters."""

from collector.state.base import Counts, StateStore, open_state_store

__all__ = ["Counts", "StateStore", "open_state_store"]
