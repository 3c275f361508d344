"""Settings of the LLM rewrite stage."""

from __future__ import annotations

import msgspec


class RewriteConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    enabled: bool = False
    base_url: str = "http://127.0.0.1:8000"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.2
    max_tokens: int = 256
