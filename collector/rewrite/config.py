"""Settings of the LLM rewrite stage: the endpoint, its limits, the budget, prompts and checks.

The stage sends each `__pairs` bullet to an OpenAI-compatible `POST {base_url}/v1/chat/completions`
and writes the checked answers to `{name}__rewritten.jsonl`. The key never sits in the file:
`api_key_env` names the environment variable that holds it (local servers need none).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from collector.sources.config import RetryConfig
from processors.config import RewriteCheckConfig

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]

DEFAULT_SYSTEM = (
    "You rewrite resume bullets. Answer with exactly one improved bullet: one sentence on one "
    "line, starting with a strong action verb, with no preamble, no quotes and no list marker. "
    "Keep every fact of the original and add no employer, tool, title or achievement it does "
    "not state. {number_rule}"
)
DEFAULT_USER = 'Role context: {context}\nOriginal bullet: """{bullet}"""\nImproved bullet:'
NUMBER_RULE_STRICT = (
    "Use only the numbers that appear in the original bullet; never invent a figure, "
    "percentage, amount or count."
)
NUMBER_RULE_PLACEHOLDERS = (
    "Use only the numbers that appear in the original bullet. Where a figure would make the "
    "bullet stronger but the original gives none, write a placeholder for the user to fill in, "
    "such as [N] for a count or [X]% for a percentage, instead of a number; never invent a "
    "figure, percentage, amount, duration or count."
)


class RewritePrompt(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The messages sent for one bullet. `{bullet}`, `{context}` and `{number_rule}` are filled."""

    system: str = DEFAULT_SYSTEM
    user: str = DEFAULT_USER

    def __post_init__(self) -> None:
        if "{bullet}" not in self.user:
            raise ValueError("the user template must contain {bullet}")


class RewriteConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    enabled: bool = False
    # The server root: the client posts to {base_url}/v1/chat/completions (a trailing /v1 is
    # accepted too, as OpenRouter and most SDKs spell it).
    base_url: str = "http://127.0.0.1:8000"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] = 0.2
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] = 256
    timeout: Positive = 60.0  # seconds for one request, answer included

    # Client-side limits, held before the server has to refuse anything.
    requests_per_minute: Positive = 60.0
    tokens_per_minute: NonNegative = 0.0  # 0: no client-side token limit
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 4
    retry: RetryConfig = RetryConfig()

    # A daily budget (UTC days); when spent the stage pauses until the next day. 0: no limit.
    daily_token_budget: Annotated[int, msgspec.Meta(ge=0)] = 0
    daily_spend_budget: NonNegative = 0.0  # in the currency of the prices below
    input_price_per_million: NonNegative = 0.0  # per million prompt tokens
    output_price_per_million: NonNegative = 0.0  # per million completion tokens

    # The stage inside the daemon: which files, how often, how many bullets per batch.
    interval: NonNegative = 10.0  # seconds between passes over the pairs files in `run`
    batch_size: Annotated[int, msgspec.Meta(ge=1)] = 16
    files: list[str] = msgspec.field(default_factory=lambda: ["*__pairs.jsonl"])

    # Prompts per recipe name ("pairs", "resume_json", ...); "default" for every other recipe.
    prompts: dict[str, RewritePrompt] = {}
    # Ask for placeholders such as [X]% where a metric is missing (the default), or for no
    # metric at all. Either way a figure the original lacks is masked or dropped afterwards by
    # the grounding check (`processors/grounding.py`), as the source's recipe.grounding says.
    placeholders: bool = True
    checks: RewriteCheckConfig = RewriteCheckConfig()

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        priced = self.input_price_per_million > 0 or self.output_price_per_million > 0
        if self.daily_spend_budget > 0 and not priced:
            raise ValueError(
                "daily_spend_budget needs input_price_per_million or output_price_per_million"
            )

    @property
    def endpoint(self) -> str:
        root = self.base_url.rstrip("/").removesuffix("/v1")
        return f"{root}/v1/chat/completions"

    def prompt_for(self, recipe: str) -> RewritePrompt:
        return self.prompts.get(recipe) or self.prompts.get("default") or RewritePrompt()

    @property
    def number_rule(self) -> str:
        return NUMBER_RULE_PLACEHOLDERS if self.placeholders else NUMBER_RULE_STRICT
