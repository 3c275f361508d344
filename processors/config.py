"""Settings of the processing stages, as msgspec Structs with documented defaults.

They are decoded from the `[processing]` table of the service config (and a source's
`recipe` table) and can be built directly in code and tests.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from processors.templates import Templates

RecipeName = Literal["chat", "pairs", "resume_json", "resume_text", "job_posting", "qa"]
# What becomes of an answer that states a figure or a name its input does not give
# (`processors/grounding.py`): its figures masked as [X] / [N], the line dropped, or kept.
GroundingAction = Literal["mask", "drop", "keep"]

# Tasks a bullet with an improved version may become (by what its answer shows).
BulletTask = Literal["improve_bullet", "star_bullet"]
BULLET_TASKS: tuple[BulletTask, ...] = ("improve_bullet", "star_bullet")


class RecipeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How a source's records become training lines. Chosen in config, never guessed."""

    name: RecipeName = "chat"
    # Logical field -> field name (or dotted path) in the record, matched case-insensitively.
    # e.g. pairs: {original = "bullet_before", improved = "bullet_after", context = "role"}
    fields: dict[str, str] = {}
    # The prompts come from the template set (`processors/data/templates.toml`): several
    # phrasings per task, one chosen per record. `system_prompt` (with `{context}`) replaces the
    # system phrasings of every task; `user_template` (with `{bullet}`) makes every bullet an
    # `improve_bullet` line with that instruction.
    system_prompt: str = ""
    user_template: str = ""
    # Phrasings added to the packaged set (or used instead of it, per task, with
    # `replace_templates`), e.g. templates = {improve_bullet = {user = ['Fix: "{bullet}"']}}.
    templates: Templates = Templates()
    replace_templates: bool = False
    # Which tasks a bullet with an improved version may become; empty: all it qualifies for.
    tasks: list[BulletTask] = []
    # The context when a record gives no job title or field (used only by a system phrasing
    # that names {context} when the template set has none without it).
    default_context: str = "general"
    # qa: the lowest score an answer needs to become the assistant turn
    min_answer_score: int = 1
    # Answers that transform the user's text (every recipe but qa; chat lines that ask for a
    # rewrite) state no figure or name the input lacks: "mask" (the default) turns invented
    # figures into placeholders, "drop" drops the line (`invented_fact`), "keep" only counts it.
    grounding: GroundingAction | None = None

    def __post_init__(self) -> None:
        if self.user_template and "{bullet}" not in self.user_template:
            raise ValueError("user_template does not name {bullet}, the text to improve")
        if self.name == "qa" and self.grounding is not None:
            raise ValueError(
                f"grounding = {self.grounding!r} does not apply to the qa recipe: its answers"
                " answer questions, transform no text of the user's and are never checked;"
                " remove grounding"
            )


class ValidateConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    min_chars: dict[str, int] = msgspec.field(
        default_factory=lambda: {"system": 1, "user": 10, "assistant": 10}
    )
    max_chars: dict[str, int] = msgspec.field(
        default_factory=lambda: {"system": 4000, "user": 16000, "assistant": 16000}
    )
    # OpenAI's fine-tuning limit is counted in tokens; ~4 chars a token is the usual estimate.
    max_total_tokens: int = 16385
    chars_per_token: float = 4.0
    # Repair mojibake with ftfy before the checks (curly quotes, full width, line breaks kept).
    fix_encoding: bool = True


class AnonymizeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    enabled: bool = True
    emails: bool = True
    phones: bool = True
    names: bool = True
    urls: bool = True
    addresses: bool = True
    # ISO 3166 regions for national phone formats (GB, not UK).
    phone_regions: list[str] = msgspec.field(
        default_factory=lambda: ["US", "GB", "DE", "FR", "IN", "CA", "AU", "ES", "IT", "NL", "BR"]
    )
    consistent_names: bool = False  # [NAME_1], [NAME_2] within a record


class DedupeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    exact: bool = True
    near: bool = False
    threshold: float = 0.8
    # MinHash permutations; the LSH bands and rows per band follow from it and the threshold
    # (64 and 0.8: 5 bands of 11 rows, so 5 index keys per record).
    num_perm: int = 64
    # Keep one shingle in `sample`, chosen by its hash, so the same ones in every text: the
    # Jaccard similarity of the kept sets estimates that of the full sets at a fraction of
    # the cost. 1 keeps them all.
    sample: int = 2
    # Character 5-grams catch small edits of short bullets (a changed word moves a word
    # 3-shingle set far below 0.8 Jaccard); word shingles suit long texts.
    shingle: Literal["word", "char"] = "char"
    shingle_size: int = 5
    # What a near-duplicate becomes: dropped (`duplicate_near`), or kept in its cluster's group
    # (so it lands in the same split as the record it resembles).
    near_action: Literal["drop", "group"] = "drop"


class SplitConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    train: float = 0.90
    validation: float = 0.05
    test: float = 0.05
    seed: str = "resume-collector"


class RewriteCheckConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What an LLM's rewrite must satisfy to become a training line (`processors/rewrite.py`)."""

    min_chars: Annotated[int, msgspec.Meta(ge=1)] = 20
    max_chars: Annotated[int, msgspec.Meta(ge=1)] = 400
    # At most this many times the original's length (an original shorter than
    # `growth_floor` counts as that long: a three-word bullet may grow into a sentence).
    max_growth: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    growth_floor: Annotated[int, msgspec.Meta(ge=1)] = 60
    allow_placeholders: bool = True


class QualityConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Answers that would teach a model nothing (processors/quality.py)."""

    enabled: bool = True
    # A rewrite must add at least this many meaningful words to the text it rewrites (words
    # of its own, not the input's, not a stock opener such as "Successfully").
    min_new_words: Annotated[int, msgspec.Meta(ge=0, le=50)] = 3
    # An answer whose words match the input's this closely (difflib's ratio) is a near copy.
    near_copy_ratio: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.85
    # A rewrite of a resume bullet longer than this many words is not one bullet.
    max_bullet_words: Annotated[int, msgspec.Meta(ge=5, le=1000)] = 60
    # The languages a training line may be in (ISO 639-1 codes, as processors/language.py's
    # detector names them); [] checks no language. Judged on the user message and the answer.
    languages: list[str] = msgspec.field(default_factory=lambda: ["en"])
    # A text with fewer letters than this is not judged (too short to tell its language).
    min_language_chars: Annotated[int, msgspec.Meta(ge=1)] = 20
    # A line is dropped only when the detector is at least this sure of another language.
    language_confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5

    def __post_init__(self) -> None:
        from processors.language import KNOWN_LANGUAGES

        for index, language in enumerate(self.languages):
            if language not in KNOWN_LANGUAGES:
                raise ValueError(
                    f"languages[{index}]: {language!r} is not a language the detector knows;"
                    " use ISO 639-1 codes in lower case, such as 'en', 'de', 'fr', 'es'"
                )


class ProcessingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    validate: ValidateConfig = ValidateConfig()
    quality: QualityConfig = QualityConfig()
    anonymize: AnonymizeConfig = AnonymizeConfig()
    dedupe: DedupeConfig = DedupeConfig()
    split: SplitConfig = SplitConfig()
