"""Emulator of an OpenAI-compatible `POST /v1/chat/completions` endpoint, for tests and the demo.

Answers are deterministic and honest: the "improved" bullet is derived from the bullet in the
request (a weak opening such as "Responsible for" becomes a strong verb) and never contains a
number the bullet did not have. When the system prompt asks for placeholders, the answer ends
with one (`[X]%`). Tests can set any answer for a bullet (`answers`, `finish_reasons`) to send
output the checks must reject, or refuse one bullet (`rejections`) or every request as an
account without credit does (`out_of_credit`).

What it does like the real service:
- `Authorization: Bearer <key>` checked when `api_key` is set (401 `invalid_api_key`);
- requests and tokens per window (`requests_per_minute`, `tokens_per_minute`, `window`
  seconds, 60 by default) with `x-ratelimit-limit/remaining/reset-requests` and `-tokens` on
  every answer (resets as Go durations: `1s`, `6m0s`, `250ms`), and a 429 `rate_limit_exceeded`
  with `retry-after` past the limit;
- errors as `{"error": {"message", "type", "code"}}`, 400 for a request it cannot read.

Faults come from the sandbox's fault middleware (`FaultConfig`: 429 with Retry-After, 500,
connection reset, truncated (malformed) JSON, slow bodies, latency). `hold_after` makes every
answer after the first N wait until `release()`: a test can kill the client at an exact point.

The emulator counts what it did (`ChatEmulator.requests`, `answered` per bullet, `refused` per
status, `arrivals`) so tests can assert that each bullet was paid for exactly once.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from collector.sandbox.faults import RATE_LIMIT_RESPONSE, FaultConfig, install

if TYPE_CHECKING:
    from collector.config import Config

_QUOTED = re.compile(r'"""(.*?)"""', re.DOTALL)
_SIMPLE_QUOTED = re.compile(r'"([^"\n]+)"')
# Weak openings and what the emulator's "model" writes instead.
_OPENINGS = [
    ("responsible for ", "Owned "),
    ("was responsible for ", "Owned "),
    ("in charge of ", "Led "),
    ("was in charge of ", "Led "),
    ("worked on ", "Delivered "),
    ("helped with ", "Contributed to "),
    ("helped to ", "Helped "),
    ("assisted with ", "Supported "),
    ("involved in ", "Contributed to "),
    ("participated in ", "Contributed to "),
    ("tasked with ", "Drove "),
    ("did ", "Completed "),
    ("handled ", "Managed "),
    ("managed ", "Led "),
    ("maintained ", "Maintained and improved "),
]


_IRREGULAR = {"build": "built", "lead": "led", "run": "ran", "write": "wrote", "make": "made"}


def _past(gerund: str) -> str:
    """maintaining -> maintained, managing -> managed, building -> built (good enough here)."""
    stem = gerund[:-3]
    if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "aeiouls":
        stem = stem[:-1]  # running -> run
    if stem in _IRREGULAR:
        return _IRREGULAR[stem]
    return (stem[:-1] if stem.endswith("e") else stem) + "ed"


def improve(bullet: str, placeholders: bool = False, role: str = "") -> str:
    """The emulator's rewrite: no new facts, no new numbers.

    A bullet with a weak opening gets a strong verb and a purpose clause naming whom the work
    served (the role context of the prompt, when there is one): enough new words that the
    quality check keeps it, so the demo shows rewritten rows. Any other bullet only gets
    "Successfully" in front, the trivial rewrite the quality check exists to drop.
    """
    text = " ".join(bullet.split()).rstrip(".;, ")
    lower = text.lower()
    for weak, strong in sorted(_OPENINGS, key=lambda pair: -len(pair[0])):
        if lower.startswith(weak):
            rest = text[len(weak) :]
            first, _, tail = rest.partition(" ")
            if first.lower().endswith("ing") and len(first) > 5:  # "for maintaining X"
                text = f"{_past(first.lower()).capitalize()} {tail}".strip()
            else:
                text = strong + rest
            team = f"the {role.strip().rstrip('.')} team" if role.strip() else "the team"
            text += f", keeping it dependable for {team} and the people it serves"
            break
    else:
        text = "Successfully " + text[:1].lower() + text[1:] if text else "Delivered the work"
    if placeholders:
        text += ", improving results by [X]%"
    return text[:1].upper() + text[1:] + "."


_ROLE = re.compile(r"^Role context:[ \t]*(.*)$", re.MULTILINE)


def role_of(content: str) -> str:
    """The role context a rewrite prompt gives (`Role context: ...`), else ""."""
    found = _ROLE.search(content)
    return found.group(1).strip() if found else ""


def bullet_of(content: str) -> str:
    """The bullet in a user message: inside triple quotes, else double quotes, else all of it."""
    found = _QUOTED.search(content) or _SIMPLE_QUOTED.search(content)
    return (found.group(1) if found else content).strip()


def go_duration(seconds: float) -> str:
    """Seconds as Go prints a duration, as OpenAI's reset headers do: 250ms, 1s, 6m0s."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


class _Window:
    """A fixed window quota: `limit` per `length` seconds (0: none)."""

    def __init__(self, limit: float, length: float) -> None:
        self.limit = limit
        self.length = length
        self.start = time.monotonic()
        self.used = 0.0

    def _roll(self, now: float) -> None:
        if now - self.start >= self.length:
            self.start = now - (now - self.start) % self.length
            self.used = 0.0

    def reset_in(self, now: float) -> float:
        self._roll(now)
        return max(0.0, self.start + self.length - now)

    def full(self, now: float, amount: float) -> bool:
        self._roll(now)
        return bool(self.limit) and self.used + amount > self.limit

    def take(self, now: float, amount: float) -> None:
        self._roll(now)
        self.used += amount

    def headers(self, kind: str, now: float) -> dict[str, str]:
        if not self.limit:
            return {}
        return {
            f"x-ratelimit-limit-{kind}": str(int(self.limit)),
            f"x-ratelimit-remaining-{kind}": str(max(0, int(self.limit - self.used))),
            f"x-ratelimit-reset-{kind}": go_duration(self.reset_in(now)),
        }


class ChatEmulator:
    def __init__(
        self,
        *,
        api_key: str = "",
        model: str = "emulated-rewriter",
        requests_per_minute: float = 0,
        tokens_per_minute: float = 0,
        window: float = 60.0,
        hold_after: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.model = model
        self.requests_window = _Window(requests_per_minute, window)
        self.tokens_window = _Window(tokens_per_minute, window)
        self.answers: dict[str, str] = {}  # bullet -> the answer to send instead
        self.finish_reasons: dict[str, str] = {}  # bullet -> finish_reason to send
        # bullet -> (status, code) refused for that bullet, e.g. (400, "context_length_exceeded")
        self.rejections: dict[str, tuple[int, str]] = {}
        self.out_of_credit = False  # every request: 429 insufficient_quota, as with no credit
        self.hold_after = hold_after
        self._released = asyncio.Event()
        self.admitted = 0  # answers let through `hold_after`
        self.abandoned = 0  # held requests whose client had gone when released
        self.requests = 0  # every request that reached the endpoint (faults excluded)
        self.answered: Counter[str] = Counter()  # bullet -> completions sent
        self.refused: Counter[int] = Counter()  # status -> refusals by the emulator itself
        self.arrivals: list[float] = []  # monotonic arrival time of each request
        self.bodies: list[dict[str, Any]] = []

    @property
    def completions(self) -> int:
        return sum(self.answered.values())

    def release(self) -> None:
        """Let held answers (see `hold_after`) go."""
        self._released.set()

    def ratelimit_headers(self, now: float) -> dict[str, str]:
        return {
            **self.requests_window.headers("requests", now),
            **self.tokens_window.headers("tokens", now),
        }


CHAT = web.AppKey("openai_chat", ChatEmulator)

# The quota `--sandbox` serves (as a paid tier's, with its x-ratelimit-* headers): above the
# demo's client-side limit (examples/demo.toml), so the demo shows that limiter at work for a
# few seconds, never a 429 and never a minute's wait.
SANDBOX_REQUESTS_PER_MINUTE = 1500.0


def _error(
    status: int, message: str, kind: str, code: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": code, "param": None}}
    return web.json_response(body, status=status, headers=headers)


def _rate_limited(retry_after: float | None, headers: dict[str, str] | None = None) -> web.Response:
    extra = dict(headers or {})
    if retry_after is not None:
        extra["retry-after"] = f"{retry_after:.3f}".rstrip("0").rstrip(".") or "0"
    message = "Rate limit reached. Please try again later."
    return _error(429, message, "requests", "rate_limit_exceeded", extra)


def create_app(faults: FaultConfig | None = None, **options: Any) -> web.Application:
    emulator: ChatEmulator = options.pop("emulator", None) or ChatEmulator(**options)
    app = web.Application()
    install(app, faults)
    app[CHAT] = emulator
    app[RATE_LIMIT_RESPONSE] = lambda request, retry_after: _rate_limited(retry_after)

    async def completions(request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        emulator.requests += 1
        emulator.arrivals.append(now)
        if emulator.api_key and request.headers.get("Authorization") != (
            f"Bearer {emulator.api_key}"
        ):
            emulator.refused[401] += 1
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        try:
            body = msgspec.json.decode(await request.read())
            messages = body["messages"]
            model = body["model"]
            if not isinstance(messages, list) or not messages or not isinstance(model, str):
                raise ValueError
            contents = [(str(m["role"]), str(m["content"])) for m in messages]
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            emulator.refused[400] += 1
            return _error(
                400, "We could not parse the JSON body.", "invalid_request_error", "invalid_json"
            )
        emulator.bodies.append(body)
        prompt_tokens = sum(len(c) for _, c in contents) // 4 + 4 * len(contents)
        max_tokens = int(body.get("max_tokens") or 256)
        windows = emulator.requests_window, emulator.tokens_window
        for window, amount in zip(windows, (1, prompt_tokens + max_tokens), strict=True):
            if window.full(now, amount):
                emulator.refused[429] += 1
                return _rate_limited(window.reset_in(now), emulator.ratelimit_headers(now))
        if emulator.out_of_credit:
            emulator.refused[429] += 1
            message = "You exceeded your current quota, please check your plan and billing."
            return _error(429, message, "insufficient_quota", "insufficient_quota")
        users = [c for role, c in contents if role == "user"]
        system = " ".join(c for role, c in contents if role == "system")
        bullet = bullet_of(users[-1] if users else contents[-1][1])
        if bullet in emulator.rejections:
            status, code = emulator.rejections[bullet]
            emulator.refused[status] += 1
            return _error(status, f"Refused ({code}).", "invalid_request_error", code)
        if emulator.hold_after is not None:
            if emulator.admitted >= emulator.hold_after:
                await emulator._released.wait()
                if request.transport is None or request.transport.is_closing():
                    emulator.abandoned += 1  # the client went away while held: no answer
                    return web.Response(status=499)
            emulator.admitted += 1
        answer = emulator.answers.get(bullet)
        if answer is None:
            prompt = users[-1] if users else ""
            answer = improve(
                bullet, placeholders="placeholder" in system.lower(), role=role_of(prompt)
            )
        completion_tokens = len(answer) // 4 + 1
        emulator.requests_window.take(now, 1)
        emulator.tokens_window.take(now, prompt_tokens + completion_tokens)
        emulator.answered[bullet] += 1
        payload = {
            "id": f"chatcmpl-emulated-{emulator.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model or emulator.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": emulator.finish_reasons.get(bullet, "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return web.json_response(payload, headers=emulator.ratelimit_headers(time.monotonic()))

    async def models(request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": emulator.model, "object": "model"}]}
        )

    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    return app


def point(config: Config, url: str) -> Config:
    """The rewrite stage aimed at this emulator."""
    rewrite = msgspec.structs.replace(config.rewrite, base_url=url)
    return msgspec.structs.replace(config, rewrite=rewrite)
