"""The daily token and spend budget of the rewrite stage (UTC days), kept in the state store.

Before each request the stage reserves its worst case (the estimated prompt plus `max_tokens`,
priced); the reservation is replaced by the real usage when the answer comes back. When a
reservation does not fit, the budget is spent: the stage pauses until the next UTC midnight
(`rewrite_budget_exhausted` in the log) instead of crashing or overrunning.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import msgspec

from collector.rewrite.config import RewriteConfig
from collector.state import StateStore

NAMESPACE = "rewrite:budget"


class DayUsage(msgspec.Struct):
    requests: int = 0
    tokens: int = 0
    spend: float = 0.0


class DailyBudget:
    """Today's usage, and what may still be spent.

    Each instance writes its own key (`{day}`, or `{day}@{instance}` with a shared Redis
    store), so instances never overwrite each other's usage; the budget is shared: what the
    others used (read by `refresh`, once per chunk) counts against it too.
    """

    def __init__(
        self,
        config: RewriteConfig,
        state: StateStore,
        wall: Callable[[], float] = time.time,
        instance: str = "",
    ) -> None:
        self.config = config
        self.state = state
        self.wall = wall
        self.instance = instance
        self._day = ""
        self.used = DayUsage()  # this instance's usage today
        self.others = DayUsage()  # the other instances' usage today, as last read
        self._reserved_tokens = 0
        self._reserved_spend = 0.0

    @property
    def limited(self) -> bool:
        return self.config.daily_token_budget > 0 or self.config.daily_spend_budget > 0

    def day(self) -> str:
        return dt.datetime.fromtimestamp(self.wall(), dt.UTC).date().isoformat()

    def seconds_until_reset(self) -> float:
        now = dt.datetime.fromtimestamp(self.wall(), dt.UTC)
        midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
        return max(0.0, (midnight - now).total_seconds())

    def _key(self, day: str) -> str:
        return f"{day}@{self.instance}" if self.instance else day

    def _today(self) -> None:
        """Switch to today's usage (read from the state store) when the day has changed."""
        day = self.day()
        if day != self._day:
            stored = self.state.get(NAMESPACE, self._key(day))
            self.used = _decode(stored) if stored else DayUsage()
            self.others = DayUsage()
            self._day = day
            if self.instance:
                self.refresh()

    def refresh(self) -> None:
        """Read what the other instances used today (a state read: call it from a thread)."""
        if not self.instance:
            return
        self._today()
        others = DayUsage()
        for key, value in self.state.scan(NAMESPACE, self._day):
            if key != self._key(self._day) and key.partition("@")[0] == self._day:
                usage = _decode(value)
                others.requests += usage.requests
                others.tokens += usage.tokens
                others.spend += usage.spend
        self.others = others

    def price(self, prompt_tokens: int, completion_tokens: int) -> float:
        config = self.config
        return (
            prompt_tokens * config.input_price_per_million
            + completion_tokens * config.output_price_per_million
        ) / 1e6

    def reserve(self, prompt_tokens: int) -> bool:
        """Hold the worst case of one request; False when it does not fit today's budget.

        Reads the state store on the first call of a day: call it from a thread, or accept a
        short blocking read once a day.
        """
        self._today()
        tokens = prompt_tokens + self.config.max_tokens
        spend = self.price(prompt_tokens, self.config.max_tokens)
        token_budget, spend_budget = self.config.daily_token_budget, self.config.daily_spend_budget
        used_tokens = self.used.tokens + self.others.tokens + self._reserved_tokens
        used_spend = self.used.spend + self.others.spend + self._reserved_spend
        if token_budget and used_tokens + tokens > token_budget:
            return False
        if spend_budget and used_spend + spend > spend_budget:
            return False
        self._reserved_tokens += tokens
        self._reserved_spend += spend
        return True

    def release(self, prompt_tokens: int) -> None:
        """Give a reservation back (the request was not answered)."""
        self._reserved_tokens -= prompt_tokens + self.config.max_tokens
        self._reserved_spend -= self.price(prompt_tokens, self.config.max_tokens)

    def record(
        self, reserved_prompt_tokens: int, prompt_tokens: int, completion_tokens: int
    ) -> dict[str, dict[str, str]]:
        """Replace a reservation by what the answer cost; the state puts to commit."""
        self.release(reserved_prompt_tokens)
        self._today()
        self.used.requests += 1
        self.used.tokens += prompt_tokens + completion_tokens
        self.used.spend += self.price(prompt_tokens, completion_tokens)
        return {NAMESPACE: {self._key(self._day): msgspec.json.encode(self.used).decode()}}


def _decode(value: str) -> DayUsage:
    try:
        return msgspec.json.decode(value, type=DayUsage)
    except msgspec.DecodeError:
        return DayUsage()
