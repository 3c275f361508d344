"""Imported by the process pool's forkserver (collector/workers.py) before it forks a worker.

It loads what every worker needs and nothing else: the processor chains' code and the
anonymizer's lexicon (most of a worker's memory: 0.1 s from its cache file, 0.7 s to build).
Workers forked from here share it copy-on-write; `gc.freeze` keeps the collector from touching,
and so copying, it.
"""

from __future__ import annotations

import gc

# The code a worker runs: the pool's side of it, and the chains (which collector.workers
# imports only when a worker first builds one).
import collector.workers  # noqa: F401
import processors.chain  # noqa: F401
from processors.anonymize.lexicon import load_lexicon

load_lexicon()
gc.collect()
gc.freeze()
