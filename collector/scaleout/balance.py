"""Where each source of the fleet should run: rendezvous hashing with bounded loads.

Pure functions over what every instance reads from Redis in the same round (who is configured
with which source, who holds it, how heavy it is), so every instance computes the same answer:

- a source's identity (`source_key`) is a hash of its type and of the fields that say what it
  fetches, so instances with different config files agree on it;
- among the live instances interested in a source, the preferred owner is the one with the
  highest rendezvous hash of (source, instance), within a bound on each instance's load
  (`balanced_placement`, `weighted_share`): sources spread evenly, and an instance joining or
  leaving moves only the sources it must.

collector/scaleout/redis_placement.py acts on the answer.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from collector.sources.config import AnySourceConfig

# What a source's identity leaves out: how it runs, not what it fetches. Secrets are named by
# `*_env` fields, which may differ between machines holding the same credential.
OPERATIONAL_FIELDS = frozenset(
    {
        "name",
        "enabled",
        "interval",
        "batch_size",
        "batch_bytes",
        "recipe",
        "license",
        "rate",
        "concurrency",
        "retry",
        "timeout",
        "max_response_bytes",
        "weight",
    }
)


def source_key(config: AnySourceConfig) -> str:
    """A stable identity for what a source fetches: its type and its defining fields."""
    kind = str(type(config).__struct_config__.tag)
    defining: dict[str, Any] = {}
    for name in config.__struct_fields__:
        if name in OPERATIONAL_FIELDS or name.endswith("_env"):
            continue
        value = getattr(config, name)
        if name == "path" and isinstance(value, str):
            value = os.path.abspath(value)  # the same folder, whatever the working directory
        defining[name] = value
    encoded = msgspec.json.encode(msgspec.to_builtins(defining, order="sorted"))
    return f"{kind}-{hashlib.blake2b(kind.encode() + b'|' + encoded, digest_size=10).hexdigest()}"


def rendezvous_owner(source: str, instances: Sequence[str]) -> str | None:
    """The instance that should own `source`: the highest hash of (source, instance)."""
    if not instances:
        return None
    return max(
        instances, key=lambda i: hashlib.blake2b(f"{source}|{i}".encode(), digest_size=8).digest()
    )


def _score(source: str, instance: str) -> bytes:
    return hashlib.blake2b(f"{source}|{instance}".encode(), digest_size=8).digest()


def _rank(source: str, instance: str) -> bytes:
    """Sorts the highest `_score` first."""
    return bytes(255 - b for b in _score(source, instance))


def weighted_share(weights: Sequence[int], instances: int) -> int:
    """The load (sum of weights) an instance takes sources up to: the total over the instances,
    rounded up, after setting aside each source heavier than that (it gets an instance to itself,
    so the others share what is left). Unit weights: ceil(sources / instances)."""
    remaining = sorted(weights, reverse=True)
    left = instances
    share = -(-sum(remaining) // left)
    while left > 1 and remaining and remaining[0] > share:
        remaining.pop(0)
        left -= 1
        share = -(-sum(remaining) // left)
    return max(1, share)


def balanced_placement(
    interest: Mapping[str, Sequence[str]],
    holders: Mapping[str, str | None],
    weights: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """source -> the instance that should run it: rendezvous hashing with bounded loads.

    `interest`: per source, the live instances configured with it; `holders`: who runs it now;
    `weights`: how much work each source is (1 when absent); an instance's load is the sum of
    its sources' weights. With W the total weight and k the instances:

    - a holder keeps its sources, heaviest first and then those it ranks highest, while its load
      before each is under ceil(W / k): an instance joining moves only sources from instances
      above the new share, one leaving moves only its own, and a placement is stable (placing
      again from it changes nothing);
    - every other source, heaviest first, goes to the instance with the highest hash of
      (source, instance) that it fits on (load + weight <= `weighted_share`), else, when it fits
      nowhere, to the least loaded instance.

    So no instance's load exceeds ceil(W / k) + (the heaviest weight - 1); with unit weights no
    instance runs more than ceil(sources / instances). (Unless only instances at that bound are
    configured with a source.) Deterministic: every instance computes the same placement from
    the same view.
    """
    weights = weights or {}
    sources = sorted(s for s, members in interest.items() if members)
    instances = sorted({i for s in sources for i in interest[s]})
    if not sources:
        return {}
    weight = {s: max(1, weights.get(s, 1)) for s in sources}
    total = sum(weight.values())
    even = -(-total // len(instances))
    share = weighted_share(list(weight.values()), len(instances))
    placed: dict[str, str] = {}
    load = dict.fromkeys(instances, 0)
    kept: dict[str, list[str]] = {}
    for source in sources:
        holder = holders.get(source)
        if holder is not None and holder in interest[source]:
            kept.setdefault(holder, []).append(source)
    for holder, held in sorted(kept.items()):
        # In the order a fresh placement adds them: what was placed is kept as it is.
        for source in sorted(held, key=lambda s, h=holder: (-weight[s], _rank(s, h))):  # type: ignore[misc]
            if load[holder] < even:
                placed[source] = holder
                load[holder] += weight[source]
    for source in sorted(sources, key=lambda s: -weight[s]):  # stable: by name within a weight
        if source in placed:
            continue
        ranked = sorted(interest[source], key=lambda i, s=source: _rank(s, i))  # type: ignore[misc]
        fits = [i for i in ranked if load[i] + weight[source] <= share]
        target = fits[0] if fits else min(ranked, key=lambda i: load[i])
        placed[source] = target
        load[target] += weight[source]
    return placed
