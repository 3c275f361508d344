"""The `StateStore` contract, run against every backend: SQLite and Redis behave the same."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from collector.config import StateConfig
from collector.state import StateStore
from collector.state.open import open_state_store
from collector.state.redis import Fence, LeaseLost, RedisStateStore
from tests import redis_server

redis_url = redis_server.redis_url
redis_prefix = redis_server.redis_prefix

Opener = Callable[[], StateStore]


@pytest.fixture(params=["sqlite", "redis"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store under test; every store opened is closed when the test ends."""
    if request.param == "sqlite":
        config = StateConfig(backend="sqlite", path=str(tmp_path / "state.sqlite3"))
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        config = StateConfig(backend="redis", url=url, prefix=prefix)
    opened: list[StateStore] = []

    def open_store() -> StateStore:
        store = open_state_store(config, instance="test-instance")
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> StateStore:
    return opener()


def test_a_cursor_saved_in_a_commit_is_read_back(store: StateStore) -> None:
    store.commit({"cursor": {"inbox\x1fa.jsonl": "120"}})
    assert store.get("cursor", "inbox\x1fa.jsonl") == "120"
    assert store.get("cursor", "missing") is None
    assert store.get("other-namespace", "inbox\x1fa.jsonl") is None


def test_a_later_commit_overwrites_a_value(store: StateStore) -> None:
    store.commit({"cursor": {"s\x1fa": "1"}})
    store.commit({"cursor": {"s\x1fa": "2"}})
    assert store.get("cursor", "s\x1fa") == "2"


def test_get_many_returns_only_the_keys_that_exist(store: StateStore) -> None:
    store.commit({"dedupe:exact": {"k1": "1", "k3": "1"}})
    found = store.get_many("dedupe:exact", ["k1", "k2", "k3", "k1"])
    assert found == {"k1": "1", "k3": "1"}
    assert store.get_many("dedupe:exact", []) == {}


def test_get_many_handles_more_keys_than_one_request_holds(store: StateStore) -> None:
    keys = [f"key-{i:06d}" for i in range(25_000)]
    store.commit({"dedupe:exact": {k: "1" for k in keys[::2]}})
    found = store.get_many("dedupe:exact", keys)
    assert len(found) == 12_500
    assert set(found) == set(keys[::2])


def test_scan_returns_the_keys_with_a_prefix_in_key_order(store: StateStore) -> None:
    store.commit(
        {
            "cursor": {
                "b\x1fz": "3",
                "a\x1fy": "1",
                "b\x1fa": "2",
                "ab\x1fx": "9",
                "b": "bare",
                "b\x1fé": "4",
                "b\x1f😀": "5",
            }
        }
    )
    assert list(store.scan("cursor", "b\x1f")) == [
        ("b\x1fa", "2"),
        ("b\x1fz", "3"),
        ("b\x1fé", "4"),
        ("b\x1f😀", "5"),
    ]
    assert [k for k, _ in store.scan("cursor")] == [
        "a\x1fy",
        "ab\x1fx",
        "b",
        "b\x1fa",
        "b\x1fz",
        "b\x1fé",
        "b\x1f😀",
    ]
    assert list(store.scan("cursor", "zzz")) == []
    assert list(store.scan("empty-namespace")) == []


def test_scan_treats_glob_characters_in_the_prefix_literally(store: StateStore) -> None:
    store.commit({"files": {"a*b/x": "1", "a-b/x": "2", "a[b]/x": "3", "a?/x": "4", "a\\/x": "5"}})
    assert list(store.scan("files", "a*")) == [("a*b/x", "1")]
    assert list(store.scan("files", "a[b]")) == [("a[b]/x", "3")]
    assert list(store.scan("files", "a?")) == [("a?/x", "4")]
    assert list(store.scan("files", "a\\")) == [("a\\/x", "5")]


def test_namespaces_are_separate(store: StateStore) -> None:
    store.commit({"cursor": {"k": "cursor"}, "files": {"k": "files"}})
    assert store.get("cursor", "k") == "cursor"
    assert store.get("files", "k") == "files"
    assert list(store.scan("cursor")) == [("k", "cursor")]


def test_a_commit_applies_puts_in_several_namespaces_and_counts_together(
    store: StateStore,
) -> None:
    store.commit(
        {"files": {"formatted/a.jsonl": "100"}, "cursor": {"s\x1fa": "7"}},
        {("s", "local/a", "fetched"): 3, ("s", "local/a", "written"): 2},
    )
    assert store.get("files", "formatted/a.jsonl") == "100"
    assert store.get("cursor", "s\x1fa") == "7"
    assert store.counts() == [("s", "local/a", "fetched", 3), ("s", "local/a", "written", 2)]


class _Exploding(Mapping[str, Any]):
    """A mapping that fails half way through being read, like a bug in the caller."""

    def __init__(self) -> None:
        self._items = {"first": "1", "second": "2"}

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        yield "first"
        raise RuntimeError("broken in the middle of the commit")

    def __len__(self) -> int:
        return 2


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"k2": None}, id="a-value-that-is-not-a-string"),
        pytest.param(_Exploding(), id="the-caller-fails-while-being-read"),
    ],
)
def test_a_commit_that_fails_in_the_middle_leaves_nothing(
    store: StateStore, bad: Mapping[str, Any]
) -> None:
    store.commit({"cursor": {"s\x1fa": "old"}}, {("s", "d", "fetched"): 1})
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own type
        store.commit(
            {"cursor": {"s\x1fa": "new", "s\x1fb": "new"}, "dedupe:exact": bad},
            {("s", "d", "fetched"): 5},
        )
    assert store.get("cursor", "s\x1fa") == "old"
    assert store.get("cursor", "s\x1fb") is None
    assert store.get_many("dedupe:exact", ["first", "k2"]) == {}
    assert store.counts() == [("s", "d", "fetched", 1)]


def test_counters_add_up_across_commits_and_skip_zero(store: StateStore) -> None:
    store.commit({}, {("s", "d", "fetched"): 2, ("s", "d", "drop:too_short"): 0})
    store.commit({}, {("s", "d", "fetched"): 3, ("s", "d", "drop:too_short"): 1})
    store.commit({}, {("t", "e", "written"): 1})
    assert store.counts() == [
        ("s", "d", "drop:too_short", 1),
        ("s", "d", "fetched", 5),
        ("t", "e", "written", 1),
    ]


def test_counters_from_many_threads_add_up(store: StateStore) -> None:
    def add() -> None:
        for _ in range(50):
            store.commit({}, {("s", "d", "fetched"): 1})

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.counts() == [("s", "d", "fetched", 200)]


def test_delete_removes_only_the_given_keys(store: StateStore) -> None:
    store.commit({"files": {"a": "1", "b": "2", "c": "3"}})
    store.delete("files", ["a", "c", "missing"])
    assert list(store.scan("files")) == [("b", "2")]
    store.delete("files", [])


def test_an_empty_commit_is_fine(store: StateStore) -> None:
    store.commit({})
    store.commit({"cursor": {}}, {})
    assert store.counts() == []


def test_what_was_committed_is_there_after_reopening(opener: Opener) -> None:
    first = opener()
    first.commit({"cursor": {"s\x1fa": "42"}}, {("s", "d", "written"): 4})
    first.close()
    second = opener()
    assert second.get("cursor", "s\x1fa") == "42"
    assert second.counts() == [("s", "d", "written", 4)]


# --- set namespaces: membership only -----------------------------------------------------------


def test_a_set_namespace_answers_membership_with_empty_values(store: StateStore) -> None:
    store.commit({"set:seen": {"k1": "", "k3": "ignored"}})
    assert store.get_many("set:seen", ["k1", "k2", "k3", "k1"]) == {"k1": "", "k3": ""}
    assert store.get("set:seen", "k3") == ""
    assert store.get("set:seen", "k2") is None
    assert store.get_many("set:other", ["k1"]) == {}


def test_a_set_keeps_every_key_of_many_commits_and_after_reopening(opener: Opener) -> None:
    store = opener()
    keys = [f"key-{i}" for i in range(30_000)]
    # Commits of uneven sizes, so the SQLite runs are merged several times over.
    for start, end in [(0, 5), (5, 6000), (6000, 6100), (6100, 20_000), (20_000, 30_000)]:
        store.commit({"set:seen": dict.fromkeys(keys[start:end], "")})
    absent = [f"absent-{i}" for i in range(5000)]
    assert store.get_many("set:seen", keys + absent) == dict.fromkeys(keys, "")
    store.close()
    assert opener().get_many("set:seen", keys[::7] + absent) == dict.fromkeys(keys[::7], "")


def test_a_set_cannot_be_scanned_or_have_keys_deleted(store: StateStore) -> None:
    store.commit({"set:seen": {"k": ""}})
    with pytest.raises(ValueError, match="is a set"):
        list(store.scan("set:seen"))
    with pytest.raises(ValueError, match="is a set"):
        store.delete("set:seen", ["k"])


def test_a_failed_commit_adds_nothing_to_a_set(store: StateStore) -> None:
    store.commit({"set:seen": {"old": ""}})
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own type
        store.commit({"set:seen": {"new": ""}, "cursor": {"k": None}})  # type: ignore[dict-item]
    assert store.get_many("set:seen", ["old", "new"]) == {"old": ""}


# --- Redis only: what sharing one store between instances needs -------------------------------


def test_local_namespaces_are_kept_apart_per_instance(redis_url: str, redis_prefix: str) -> None:
    config = StateConfig(backend="redis", url=redis_url, prefix=redis_prefix)
    one = open_state_store(config, instance="one")
    two = open_state_store(config, instance="two")
    try:
        one.commit({"files": {"formatted/x.jsonl": "100"}, "cursor": {"s\x1fa": "5"}})
        two.commit({"files": {"formatted/x.jsonl": "7"}})
        assert one.get("files", "formatted/x.jsonl") == "100"
        assert two.get("files", "formatted/x.jsonl") == "7"
        assert two.get("cursor", "s\x1fa") == "5"  # cursors are shared
    finally:
        one.close()
        two.close()


def test_keys_stay_under_the_configured_prefix(redis_url: str, redis_prefix: str) -> None:
    store = open_state_store(StateConfig(backend="redis", url=redis_url, prefix=redis_prefix))
    assert isinstance(store, RedisStateStore)
    try:
        store.commit({"cursor": {"a": "1"}, "files": {"b": "2"}}, {("s", "d", "w"): 1})
        keys = sorted(str(k) for k in store.client.scan_iter(match="*", count=1000))
        mine = [k for k in keys if k.startswith(f"{redis_prefix}:")]
        assert mine == [
            f"{redis_prefix}:counts",
            f"{redis_prefix}:kv:cursor",
            f"{redis_prefix}:local::kv:files",
        ]
    finally:
        store.close()


def test_the_password_comes_from_the_named_environment_variable(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector.config import ConfigError

    config = StateConfig(
        backend="redis", url=redis_url, prefix=redis_prefix, password_env="RC_TEST_REDIS_PASSWORD"
    )
    monkeypatch.delenv("RC_TEST_REDIS_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="RC_TEST_REDIS_PASSWORD is not set"):
        open_state_store(config)


def test_an_unreachable_redis_is_a_clear_error(tmp_path: Path) -> None:
    from collector.config import ConfigError

    config = StateConfig(backend="redis", url=f"unix://{tmp_path}/nothing-here.sock")
    with pytest.raises(ConfigError, match=r"state\.url: cannot reach Redis"):
        open_state_store(config)


def test_the_password_from_the_environment_is_sent_to_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from collector.config import ConfigError

    if shutil.which("redis-server") is None:
        pytest.skip(redis_server.MISSING)
    server = redis_server.RedisServer(password="s3cret")  # a server of its own, with a password
    try:
        config = StateConfig(backend="redis", url=server.url, password_env="RC_TEST_REDIS_PW")
        monkeypatch.setenv("RC_TEST_REDIS_PW", "s3cret")
        store = open_state_store(config)
        store.commit({"cursor": {"a": "1"}})
        assert store.get("cursor", "a") == "1"
        store.close()
        monkeypatch.setenv("RC_TEST_REDIS_PW", "wrong")
        with pytest.raises(ConfigError, match="cannot reach Redis"):
            open_state_store(config)
    finally:
        server.stop()


# --- Redis only: fences (a source's cursors are committed only under its lease) ---------------


@pytest.fixture
def fenced(redis_url: str, redis_prefix: str) -> Iterator[RedisStateStore]:
    store = open_state_store(StateConfig(backend="redis", url=redis_url, prefix=redis_prefix))
    assert isinstance(store, RedisStateStore)
    store.client.set(f"{redis_prefix}:lease:source:gh", "me", px=30_000)
    store.fence("gh", Fence("cursor", "gh\x1f", (f"{redis_prefix}:lease:source:gh",), "me"))
    yield store
    store.close()


def test_a_fenced_commit_goes_through_while_the_lease_is_held(fenced: RedisStateStore) -> None:
    fenced.commit({"cursor": {"gh\x1fq": "page-2"}, "files": {"f": "10"}})
    assert fenced.get("cursor", "gh\x1fq") == "page-2"


def test_a_commit_is_refused_whole_once_the_lease_is_someone_elses(
    fenced: RedisStateStore, redis_prefix: str
) -> None:
    heard: list[list[str]] = []
    fenced.on_lease_lost = heard.append
    fenced.client.set(f"{redis_prefix}:lease:source:gh", "another-instance", px=30_000)
    with pytest.raises(LeaseLost, match="lease lost for gh"):
        fenced.commit(
            {"cursor": {"gh\x1fq": "page-3", "inbox\x1fa": "5"}, "files": {"f": "20"}},
            {("gh", "d", "written"): 1},
        )
    assert heard == [["gh"]]
    assert fenced.get("cursor", "gh\x1fq") is None
    assert fenced.get("cursor", "inbox\x1fa") is None
    assert fenced.counts() == []
    # Commits that carry no cursor of that source are not its business.
    fenced.commit({"cursor": {"inbox\x1fa": "5"}})
    assert fenced.get("cursor", "inbox\x1fa") == "5"


def test_an_expired_lease_refuses_the_commit(fenced: RedisStateStore, redis_prefix: str) -> None:
    fenced.client.delete(f"{redis_prefix}:lease:source:gh")
    with pytest.raises(LeaseLost):
        fenced.commit({"cursor": {"gh\x1fq": "page-3"}})


def test_renewals_during_fenced_commits_do_not_refuse_them(
    fenced: RedisStateStore, redis_prefix: str
) -> None:
    stop = threading.Event()

    def renew() -> None:
        while not stop.is_set():
            fenced.client.pexpire(f"{redis_prefix}:lease:source:gh", 30_000)

    renewer = threading.Thread(target=renew)
    renewer.start()
    try:
        for i in range(200):
            fenced.commit({"cursor": {"gh\x1fq": str(i)}})
    finally:
        stop.set()
        renewer.join()
    assert fenced.get("cursor", "gh\x1fq") == "199"


def test_unfencing_lifts_the_check(fenced: RedisStateStore, redis_prefix: str) -> None:
    fenced.client.delete(f"{redis_prefix}:lease:source:gh")
    fenced.unfence("gh")
    fenced.commit({"cursor": {"gh\x1fq": "x"}})
    assert fenced.get("cursor", "gh\x1fq") == "x"


def test_redis_settings_that_can_lose_state_are_named(redis_url: str, redis_prefix: str) -> None:
    store = RedisStateStore.from_config(
        StateConfig(backend="redis", url=redis_url, prefix=redis_prefix)
    )
    before = store.client.config_get("maxmemory-policy")["maxmemory-policy"]
    try:
        store.client.config_set("maxmemory-policy", "allkeys-lru")
        risks = dict(store.server_risks())
        assert risks["redis_may_evict"]["maxmemory_policy"] == "allkeys-lru"
        store.client.config_set("maxmemory-policy", "noeviction")
        assert "redis_may_evict" not in dict(store.server_risks())
    finally:
        store.client.config_set("maxmemory-policy", before)
        store.close()
