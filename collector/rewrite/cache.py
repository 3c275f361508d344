"""Answers already paid for, in the state store: a restart or a reprocess never pays twice.

The key is a hash of (model, prompt, input): the model name and the exact messages sent, which
hold the prompt template filled with the bullet and its context. Changing the model or the
prompt asks again; anything else (temperature, checks, the recipe's training prompts) does not.
Each answer is committed as soon as it arrives, before its training line is durable, so a kill
between the two costs a cache hit on restart, not a second request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from collector.rewrite.client import ChatAnswer, Message
from collector.state import StateStore

NAMESPACE = "rewrite:cache"


class CachedAnswer(msgspec.Struct, frozen=True):
    content: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    at: float = 0.0  # wall time it was answered

    @classmethod
    def of(cls, answer: ChatAnswer, at: float) -> CachedAnswer:
        return cls(
            answer.content,
            answer.finish_reason,
            answer.usage.prompt_tokens,
            answer.usage.completion_tokens,
            answer.model,
            at,
        )


def cache_key(model: str, messages: Sequence[Message]) -> str:
    body = msgspec.json.encode([model, [[m.role, m.content] for m in messages]])
    return hashlib.blake2b(body, digest_size=20).hexdigest()


_decoder = msgspec.json.Decoder(CachedAnswer)


def encode(answer: CachedAnswer) -> str:
    return msgspec.json.encode(answer).decode()


def lookup(state: StateStore, keys: Iterable[str]) -> dict[str, CachedAnswer]:
    """The cached answers among `keys` (an unreadable entry counts as a miss)."""
    found: dict[str, CachedAnswer] = {}
    for key, value in state.get_many(NAMESPACE, keys).items():
        try:
            found[key] = _decoder.decode(value)
        except msgspec.DecodeError:
            continue
    return found
