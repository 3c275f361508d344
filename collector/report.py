"""The quality report: what the formatted files hold, as figures, goals and one HTML page.

    {data_dir}/formatted/*.jsonl  +  *__provenance.jsonl  +  the state store's counters
        -> read_figures()  -> Figures (what `report` prints, as text or JSON)
        -> check_goals()   -> the goals of issue 17, each met, not met or not checkable
        -> render_html()   -> one page with inline SVG plots (matplotlib, the `report` extra)

Published rows are the training files' lines (`{stem}.jsonl` and `{stem}__rewritten.jsonl`, what
chunks are cut from); the provenance file beside each holds one line per training line, in the
same order. Only whole lines are read, so a report taken while the service writes sees the rows
written so far. Nothing here touches the network: the page embeds its plots and needs no font,
script or image from elsewhere.
"""

from __future__ import annotations

import html
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from collector.config import Config
from processors.grounding import outcome_counts
from processors.quality import QualityCheck
from processors.records import Example, Message

INSTALL_HINT = "pip install 'resume-collector[report]'"
# The goals (issue 17): thresholds the report checks.
MIN_TASK_TYPES = 5
MAX_SYSTEM_PROMPT_SHARE = 0.30
TOP_N = 10
UNKNOWN = "unknown"
# A system prompt's `Context: <job title>` tail varies per row; the prompt is the rest.
_CONTEXT_TAIL = re.compile(r"\s*Context:.*\Z", re.DOTALL)
_INSTRUCTION_CHARS = 120


class Repeated(msgspec.Struct):
    text: str
    count: int
    share: float


class Goal(msgspec.Struct):
    name: str
    status: Literal["met", "not met", "not checked"]
    detail: str


class Figures(msgspec.Struct):
    data_dir: str
    rows: int
    per_source: dict[str, int]
    per_dataset: dict[str, int]
    per_task: dict[str, int]
    per_split: dict[str, int]
    rewritten: int  # lines of `__rewritten` files: an LLM wrote the answer
    synthetic: int  # rewritten lines and lines whose provenance says `synthetic` or `rewritten_by`
    tokenizer: str  # what counted the tokens: a real tokenizer, or the chars/4 estimate
    chars: list[int]  # characters of each row's messages
    tokens: list[int]  # tokens of each row's messages
    fetched: int
    written: int
    pairs_pending: int
    drop_reasons: dict[str, int]
    invented_facts: dict[str, int]
    residual: dict[str, int]
    trivial_published: int  # published rows the quality step would drop as trivial_rewrite
    near_copy_published: int
    missing_provenance: int  # training lines with no provenance line beside them
    unreadable_lines: int
    top_system_prompts: list[Repeated]
    top_user_instructions: list[Repeated]
    missing_source: int = 0
    missing_license: int = 0
    missing_attribution: int = 0
    attribution_fields: bool = False  # whether any provenance line carries url/author fields
    goals: list[Goal] = []


# --- reading -------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[bytes | None]:
    """The file's whole lines; a torn last line (being written) is left out."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n")
    for line in data[: end + 1].splitlines():
        yield line if line.strip() else None


def training_files(formatted: Path) -> list[Path]:
    return sorted(
        p
        for p in formatted.glob("*.jsonl")
        if not p.name.endswith(("__provenance.jsonl", "__pairs.jsonl"))
    )


def token_counter() -> tuple[str, Callable[[str], int]]:
    """A real tokenizer where one is installed (tiktoken, with its encoding already cached:
    it is never downloaded here), else the estimate of one token per four characters."""
    try:
        import tiktoken  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return _estimate()
    # A missing encoding file would be fetched over HTTP: aim that request at a closed local
    # port so it fails at once instead.
    saved = {k: os.environ.get(k) for k in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "no_proxy")}
    os.environ.update(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    os.environ.pop("NO_PROXY", None)
    os.environ.pop("no_proxy", None)
    try:
        encoding = tiktoken.get_encoding("cl100k_base")
    except Exception:
        return _estimate()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return "tiktoken cl100k_base", lambda text: len(encoding.encode(text, disallowed_special=()))


def _estimate() -> tuple[str, Callable[[str], int]]:
    return "estimate: characters / 4 (no tokenizer installed)", lambda text: (len(text) + 3) // 4


def system_prompt(messages: list[Message]) -> str:
    """The row's system prompt without its `Context:` tail; "" when it has none."""
    text = next((m.content for m in messages if m.role == "system"), "")
    return _CONTEXT_TAIL.sub("", text).strip()


def user_instruction(messages: list[Message]) -> str:
    """The instruction of the row's first user message: its first line, up to and with its
    first colon (`Improve this resume bullet:`), so the text it works on is left out."""
    text = next((m.content for m in messages if m.role == "user"), "").strip()
    first = text.split("\n", 1)[0]
    head, colon, _ = first.partition(":")
    instruction = head + colon if colon else first
    return instruction.strip()[:_INSTRUCTION_CHARS]


def _top(counter: Counter[str], rows: int) -> list[Repeated]:
    return [
        Repeated(text=text, count=n, share=n / rows if rows else 0.0)
        for text, n in counter.most_common(TOP_N)
    ]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _license(provenance: dict[str, Any], configured: dict[str, str]) -> str:
    given = _text(provenance.get("license")) or _text(provenance.get("licence"))
    return given or configured.get(_text(provenance.get("source")), UNKNOWN)


def _attributed(provenance: dict[str, Any], license: str) -> bool:
    """A credit line or a link back to the row's origin, and its authors where the licence asks
    for them (CC BY*, ODC-By)."""
    credit = _text(provenance.get("attribution"))
    link = _text(provenance.get("url")) or _text(provenance.get("source_url"))
    authors = provenance.get("authors")
    named = bool(_text(provenance.get("author"))) or (
        isinstance(authors, list)
        and any(isinstance(a, dict) and _text(a.get("name")) for a in authors)
    )
    if license.lower().startswith(("cc-by", "odc-by")) and not named:
        return False
    return bool(credit or link or named)


def read_figures(
    config: Config, counts: list[tuple[str, str, str, int]], *, tokenizer: str = "auto"
) -> Figures:
    """Every figure of the report from the formatted files and the state store's counters."""
    layout = config.layout()
    formatted = layout.formatted
    tokenizer_name, count_tokens = _estimate() if tokenizer == "estimate" else token_counter()
    configured = {s.name: s.license for s in config.sources}
    decode_line = msgspec.json.Decoder(dict[str, Any]).decode
    quality = QualityCheck(msgspec.structs.replace(config.processing.quality, enabled=True))
    per_source: Counter[str] = Counter()
    per_dataset: Counter[str] = Counter()
    per_task: Counter[str] = Counter()
    per_split: Counter[str] = Counter()
    systems: Counter[str] = Counter()
    instructions: Counter[str] = Counter()
    chars: list[int] = []
    tokens: list[int] = []
    rows = rewritten = synthetic = unreadable = no_provenance = 0
    missing_source = missing_license = missing_attribution = 0
    attribution_fields = False
    for path in training_files(formatted) if formatted.is_dir() else []:
        is_rewritten = path.stem.endswith("__rewritten")
        origins = _lines(path.with_name(f"{path.stem}__provenance.jsonl"))
        for line in _lines(path):
            origin_line = next(origins, None)
            try:
                messages = msgspec.json.decode(line or b"", type=TrainingRow).messages
            except msgspec.DecodeError:
                unreadable += 1
                continue
            try:
                origin = decode_line(origin_line) if origin_line else {}
            except msgspec.DecodeError:
                origin = {}
            if not origin:
                no_provenance += 1
            rows += 1
            source = _text(origin.get("source")) or UNKNOWN
            per_source[source] += 1
            per_dataset[_text(origin.get("dataset")) or path.stem] += 1
            per_task[_text(origin.get("task")) or UNKNOWN] += 1
            per_split[_text(origin.get("split")) or UNKNOWN] += 1
            rewritten += is_rewritten
            synthetic += (
                is_rewritten
                or origin.get("synthetic") is True
                or bool(_text(origin.get("rewritten_by")))
            )
            text = "\n".join(m.content for m in messages)
            chars.append(len(text))
            tokens.append(count_tokens(text))
            systems[system_prompt(messages) or "(no system prompt)"] += 1
            instructions[user_instruction(messages) or "(no user message)"] += 1
            example = Example(messages=messages, source=source, dataset="", record_id="")
            quality.run(example)  # counted in its outcomes
            license = _license(origin, configured)
            attribution_fields |= any(
                k in origin for k in ("url", "source_url", "author", "authors", "attribution")
            )
            missing_source += source == UNKNOWN
            missing_license += license.lower() in ("", UNKNOWN)
            missing_attribution += not _attributed(origin, license)
    totals: Counter[str] = Counter()
    for _source, _dataset, what, n in counts:
        totals[what] += n
    figures = Figures(
        data_dir=str(layout.data_dir),
        rows=rows,
        per_source=dict(per_source.most_common()),
        per_dataset=dict(per_dataset.most_common()),
        per_task=dict(per_task.most_common()),
        per_split=dict(per_split.most_common()),
        rewritten=rewritten,
        synthetic=synthetic,
        tokenizer=tokenizer_name,
        chars=chars,
        tokens=tokens,
        fetched=totals["fetched"],
        written=totals["written"],
        pairs_pending=totals["pairs"],
        drop_reasons={
            k.removeprefix("drop:"): n
            for k, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
            if k.startswith("drop:")
        },
        invented_facts=outcome_counts(totals),
        residual={
            k.removeprefix("residual:"): n for k, n in totals.items() if k[:9] == "residual:"
        },
        trivial_published=quality.outcomes["trivial_rewrite"],
        near_copy_published=quality.outcomes["near_copy"],
        missing_provenance=no_provenance,
        unreadable_lines=unreadable,
        top_system_prompts=_top(systems, rows),
        top_user_instructions=_top(instructions, rows),
        missing_source=missing_source,
        missing_license=missing_license,
        missing_attribution=missing_attribution,
        attribution_fields=attribution_fields,
    )
    figures.goals = check_goals(figures)
    return figures


class TrainingRow(msgspec.Struct):
    messages: list[Message]


# --- the goals -----------------------------------------------------------------------------


def check_goals(f: Figures) -> list[Goal]:
    """Issue 17's goals, as far as the files tell; on no rows, none is checked."""
    if not f.rows:
        return [Goal("published rows", "not checked", "nothing published yet")]
    goals = [
        Goal(
            "no trivial rewrites published",
            "met" if f.trivial_published == 0 else "not met",
            f"{f.trivial_published} published rows are trivial rewrites by the quality step's"
            f" rule ({f.drop_reasons.get('trivial_rewrite', 0)} were dropped as such)",
        )
    ]
    known = {t: n for t, n in f.per_task.items() if t != UNKNOWN}
    if known:
        goals.append(
            Goal(
                f">= {MIN_TASK_TYPES} task types",
                "met" if len(known) >= MIN_TASK_TYPES else "not met",
                f"{len(known)} task types: {', '.join(known)}",
            )
        )
    else:
        goals.append(
            Goal(f">= {MIN_TASK_TYPES} task types", "not checked", "no row's provenance has a task")
        )
    prompts = [p for p in f.top_system_prompts if p.text != "(no system prompt)"]
    top = prompts[0] if prompts else None
    goals.append(
        Goal(
            f"no system prompt over {MAX_SYSTEM_PROMPT_SHARE:.0%} of rows",
            "met" if top is None or top.share <= MAX_SYSTEM_PROMPT_SHARE else "not met",
            "no row has a system prompt"
            if top is None
            else f"the most common is on {top.share:.1%} of rows ({top.count} of {f.rows})",
        )
    )
    missing = {
        "source": f.missing_source,
        "licence": f.missing_license,
        "attribution": f.missing_attribution,
    }
    detail = ", ".join(f"{n} without {what}" for what, n in missing.items() if n) or "all have"
    if not f.attribution_fields:
        detail += " (the provenance has no url or author field)"
    goals.append(
        Goal(
            "every published row with source, licence and attribution",
            "met" if not any(missing.values()) else "not met",
            detail,
        )
    )
    return goals


# --- text ----------------------------------------------------------------------------------


def percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def text_lines(f: Figures) -> list[str]:
    """The key figures, as `report` prints them."""
    if not f.rows:
        lines = [f"nothing yet: no training lines under {f.data_dir}/formatted"]
        if f.fetched or f.drop_reasons:
            lines.append(f"fetched {f.fetched}, dropped {sum(f.drop_reasons.values())}")
        return lines + [f"goal {g.name}: {g.status}: {g.detail}" for g in f.goals]

    def share(n: int) -> str:
        return f"{n} ({n / f.rows:.1%})"

    def listing(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"

    lines = [
        f"rows published: {f.rows} (fetched {f.fetched}, written {f.written},"
        f" pairs waiting for a rewrite {f.pairs_pending})",
        f"per source: {listing(f.per_source)}",
        f"per task: {listing(f.per_task)}",
        f"per split: {listing(f.per_split)}",
        f"rewritten by an LLM: {share(f.rewritten)}; synthetic: {share(f.synthetic)}",
        f"characters per row: median {percentile(f.chars, 0.5)}, p95 {percentile(f.chars, 0.95)},"
        f" max {max(f.chars)}",
        f"tokens per row ({f.tokenizer}): median {percentile(f.tokens, 0.5)},"
        f" p95 {percentile(f.tokens, 0.95)}, max {max(f.tokens)}, total {sum(f.tokens)}",
        f"dropped: {listing(f.drop_reasons)}",
        "answers with invented facts: "
        + ", ".join(f"{k} {v}" for k, v in f.invented_facts.items()),
        f"anonymizer's last check replaced: {listing(f.residual)}",
    ]
    for title, top in (
        ("system prompt", f.top_system_prompts),
        ("user instruction", f.top_user_instructions),
    ):
        if top:
            lines.append(
                f"most common {title}: {top[0].share:.1%} ({top[0].count}): {top[0].text!r}"
            )
    if f.missing_provenance or f.unreadable_lines:
        lines.append(
            f"rows without provenance: {f.missing_provenance};"
            f" unreadable lines: {f.unreadable_lines}"
        )
    lines += [f"goal {g.name}: {g.status}: {g.detail}" for g in f.goals]
    return lines


# --- the page ------------------------------------------------------------------------------


def render_html(f: Figures) -> str:
    """One self-contained page: the figures, the goals and inline SVG plots (needs matplotlib;
    raises ImportError without it)."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    # Text stays text (the browser's own fonts, none embedded); the same data, the same page.
    settings: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "resume-collector"}

    def svg(figure: Figure) -> str:
        buffer = io.StringIO()
        with rc_context(settings):
            figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
        text = buffer.getvalue()
        return text[text.index("<svg") :]  # no XML prolog or DOCTYPE inside HTML

    def bars(title: str, counts: dict[str, int], xlabel: str = "rows") -> str:
        items = list(counts.items())[:15][::-1]
        figure = Figure(figsize=(7, 0.4 * len(items) + 1.2))
        axes = figure.subplots()
        axes.barh([_short(k, 60) for k, _ in items], [v for _, v in items], color="#4c72b0")
        for index, (_, value) in enumerate(items):
            axes.annotate(f" {value}", (value, index), va="center", fontsize=8)
        axes.set_title(title)
        axes.set_xlabel(xlabel)
        return svg(figure)

    def histogram(title: str, values: list[int], xlabel: str) -> str:
        figure = Figure(figsize=(7, 3))
        axes = figure.subplots()
        axes.hist(values, bins=min(40, max(5, len(set(values)))), color="#55a868")
        axes.set_title(title)
        axes.set_xlabel(xlabel)
        axes.set_ylabel("rows")
        return svg(figure)

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>resume-collector quality report</title><style>",
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}",
        "svg{max-width:100%;height:auto}td,th{padding:.2em .6em;text-align:left}",
        ".met{color:#2a7d2a}.not{color:#b22}.unchecked{color:#777}</style></head><body>",
        "<h1>Quality report</h1>",
        f"<p>Data folder: <code>{html.escape(f.data_dir)}</code></p>",
    ]
    if not f.rows:
        parts.append(
            "<p><strong>Nothing yet:</strong> no training lines under"
            f" <code>{html.escape(f.data_dir)}/formatted</code>. Run"
            " <code>resume-collector once</code> first.</p>"
        )
        if f.drop_reasons:
            parts.append(bars("Drop reasons", f.drop_reasons))
        parts.append("</body></html>")
        return "\n".join(parts)
    parts.append("<h2>Goals</h2><table>")
    for goal in f.goals:
        css = {"met": "met", "not met": "not", "not checked": "unchecked"}[goal.status]
        parts.append(
            f"<tr><td>{html.escape(goal.name)}</td><td class='{css}'>{goal.status}</td>"
            f"<td>{html.escape(goal.detail)}</td></tr>"
        )
    parts.append("</table><h2>Key figures</h2><ul>")
    parts += [f"<li>{html.escape(line)}</li>" for line in text_lines(f) if line[:5] != "goal "]
    parts.append("</ul><h2>Rows</h2>")
    parts.append(bars("Rows per source", f.per_source))
    parts.append(bars("Rows per task type", f.per_task))
    parts.append(bars("Rows per split", f.per_split))
    human = f.rows - f.synthetic
    parts.append(
        bars(
            "Rewritten and synthetic rows",
            {"rewritten by an LLM": f.rewritten, "synthetic": f.synthetic, "not synthetic": human},
        )
    )
    parts.append("<h2>Lengths</h2>")
    parts.append(histogram("Characters per row", f.chars, "characters"))
    parts.append(histogram(f"Tokens per row ({f.tokenizer})", f.tokens, "tokens"))
    parts.append("<h2>What was left out</h2>")
    for title, counts in (
        ("Drop reasons", f.drop_reasons),
        ("Answers with invented facts", f.invented_facts),
        ("Anonymizer's last check: replaced, by kind", f.residual),
    ):
        if any(counts.values()):
            parts.append(bars(title, counts, "records"))
        else:
            parts.append(f"<p>{html.escape(title)}: none.</p>")
    parts.append("<h2>Repeated prompts</h2>")
    for title, top in (
        ("Most common system prompts (without their Context: line)", f.top_system_prompts),
        ("Most common user instructions (first line, up to its colon)", f.top_user_instructions),
    ):
        parts.append(
            bars(title, {_ranked(i, r): r.count for i, r in enumerate(top, 1)}, "rows")
            if top
            else ""
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _ranked(rank: int, repeated: Repeated) -> str:
    """A bar's label: rank, the text cut short and its share (kept whole, unlike the text)."""
    return f"{rank}. {_short(repeated.text, 48)} ({repeated.share:.0%})"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
