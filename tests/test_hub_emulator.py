"""The Hub emulator, driven by the real `huggingface_hub` client (and by plain HTTP)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx2
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, set_client_factory
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.utils._http import default_client_factory, hf_request_event_hook

from collector.config import parse_config
from collector.sandbox import Sandbox
from collector.sandbox.hub import (
    LFS_THRESHOLD,
    HubEmulator,
    HubFault,
    git_blob_oid,
    lfs_pointer,
)
from tests.hub_support import TOKEN, running_hub

REPO = "alice/resumes"


@pytest.fixture
def hub() -> Iterator[tuple[HubEmulator, HfApi]]:
    with running_hub() as (emulator, url):
        api = HfApi(endpoint=url, token=TOKEN)
        api.create_repo(REPO, repo_type="dataset", exist_ok=True)
        yield emulator, api


@pytest.fixture
def short_timeout() -> Iterator[None]:
    """The shared client waits forever by default; a held answer must time out."""
    set_client_factory(
        lambda: httpx2.Client(
            event_hooks={"request": [hf_request_event_hook]}, follow_redirects=True, timeout=1.0
        )
    )
    yield
    set_client_factory(default_client_factory)


def add(path: str, text: str) -> CommitOperationAdd:
    return CommitOperationAdd(path_in_repo=path, path_or_fileobj=text.encode())


def commit(api: HfApi, *ops: CommitOperationAdd, parent: str | None = None) -> str:
    info = api.create_commit(
        REPO, list(ops), commit_message="test", repo_type="dataset", parent_commit=parent
    )
    return str(info.oid)


def test_create_repo_with_exist_ok_returns_the_same_repo_twice() -> None:
    with running_hub() as (emulator, url):
        api = HfApi(endpoint=url, token=TOKEN)
        first = api.create_repo(REPO, repo_type="dataset", private=True, exist_ok=True)
        second = api.create_repo(REPO, repo_type="dataset", exist_ok=True)
        assert first == second == f"{url}/datasets/{REPO}"
        assert emulator.repo(REPO).private
        with pytest.raises(HfHubHTTPError) as error:
            api.create_repo(REPO, repo_type="dataset")
        assert error.value.response.status_code == 409


def test_commits_have_git_ids_and_a_parent_chain(hub: tuple[HubEmulator, HfApi]) -> None:
    emulator, api = hub
    first = commit(api, add("a.txt", "a\n"))
    second = commit(api, add("b.txt", "b\n"), parent=first)
    history = api.list_repo_commits(REPO, repo_type="dataset")
    assert [c.commit_id for c in history[:2]] == [second, first]
    assert history[-1].title == "initial commit"
    assert all(len(c.commit_id) == 40 for c in history)
    assert emulator.repo(REPO).commits[second].parent == first
    info = api.repo_info(REPO, repo_type="dataset")
    assert info.sha == second
    # A commit id is git's: sha1 over "commit <len>\0" and the commit text.
    assert int(second, 16) and second != hashlib.sha1(b"").hexdigest()


def test_a_stale_parent_commit_is_refused_with_412(hub: tuple[HubEmulator, HfApi]) -> None:
    emulator, api = hub
    head = api.repo_info(REPO, repo_type="dataset").sha
    commit(api, add("a.txt", "a\n"))
    with pytest.raises(HfHubHTTPError) as error:
        commit(api, add("b.txt", "b\n"), parent=head)
    assert error.value.response.status_code == 412
    assert "b.txt" not in emulator.files(REPO)


def test_a_small_text_file_goes_inline_in_the_commit(hub: tuple[HubEmulator, HfApi]) -> None:
    emulator, api = hub
    emulator.requests.clear()
    commit(api, add("data/train/small.jsonl", '{"messages": []}\n'))
    assert [endpoint for endpoint, _ in emulator.requests] == ["preupload", "commit"]
    entry = api.get_paths_info(REPO, ["data/train/small.jsonl"], repo_type="dataset")[0]
    assert isinstance(entry, RepoFile) and entry.lfs is None
    assert entry.blob_id == git_blob_oid(b'{"messages": []}\n')


def test_a_file_above_the_threshold_goes_through_the_lfs_batch_api(
    hub: tuple[HubEmulator, HfApi], tmp_path: Path
) -> None:
    emulator, api = hub
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"messages": []}\n' * (LFS_THRESHOLD // 17 + 1))  # just above 5 MB
    data = big.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    emulator.requests.clear()
    api.create_commit(
        REPO,
        [CommitOperationAdd("data/train/big.jsonl", str(big))],
        commit_message="big",
        repo_type="dataset",
    )
    assert [endpoint for endpoint, _ in emulator.requests] == [
        "preupload",
        "lfs_batch",
        "lfs_upload",
        "lfs_verify",
        "commit",
    ]
    assert emulator.files(REPO)["data/train/big.jsonl"] == data
    # The tree holds the pointer: the entry's oid is the pointer's git blob id, not the content's.
    entry = api.get_paths_info(REPO, ["data/train/big.jsonl"], repo_type="dataset")[0]
    assert isinstance(entry, RepoFile) and entry.lfs is not None
    assert entry.blob_id == git_blob_oid(lfs_pointer(sha256, len(data))) != git_blob_oid(data)
    assert (entry.lfs.sha256, entry.lfs.size, entry.size) == (sha256, len(data), len(data))
    assert entry.lfs.pointer_size == len(lfs_pointer(sha256, len(data)))
    info = api.dataset_info(REPO, files_metadata=True)
    sibling = next(s for s in info.siblings or [] if s.rfilename == "data/train/big.jsonl")
    assert sibling.lfs is not None and sibling.lfs.sha256 == sha256
    # Downloads get the content, named by its sha256.
    path = hf_hub_download(
        REPO,
        "data/train/big.jsonl",
        repo_type="dataset",
        endpoint=api.endpoint,
        token=TOKEN,
        cache_dir=tmp_path / "cache",
    )
    assert Path(path).read_bytes() == data


def test_an_object_the_repo_holds_is_not_uploaded_again(hub: tuple[HubEmulator, HfApi]) -> None:
    emulator, api = hub
    emulator.lfs_threshold = 100
    commit(api, add("data/a.jsonl", "a" * 500))
    emulator.requests.clear()
    commit(api, add("data/b.jsonl", "a" * 500))  # the same bytes under another name
    assert [endpoint for endpoint, _ in emulator.requests] == ["preupload", "lfs_batch", "commit"]
    assert emulator.files(REPO)["data/b.jsonl"] == b"a" * 500
    again = commit(api, add("data/b.jsonl", "a" * 500))  # unchanged: the client skips it
    assert again == emulator.repo(REPO).head
    assert len(emulator.writes(REPO, "data/b.jsonl")) == 1


def test_gitattributes_and_binary_samples_send_small_files_to_lfs(
    hub: tuple[HubEmulator, HfApi],
) -> None:
    _, api = hub
    commit(
        api,
        CommitOperationAdd("data/rows.parquet", b"PAR1 rows"),
        CommitOperationAdd("data/blob.bin", b"\x00\x01binary"),
        add("data/notes.txt", "text"),
    )
    infos = api.get_paths_info(
        REPO, ["data/rows.parquet", "data/blob.bin", "data/notes.txt"], repo_type="dataset"
    )
    assert {i.path: isinstance(i, RepoFile) and i.lfs is not None for i in infos} == {
        "data/rows.parquet": True,
        "data/blob.bin": True,
        "data/notes.txt": False,
    }


def test_a_commit_naming_an_object_never_uploaded_is_refused(
    hub: tuple[HubEmulator, HfApi],
) -> None:
    emulator, api = hub
    line = {"path": "x.jsonl", "algo": "sha256", "oid": "a" * 64, "size": 10}
    body = "\n".join(
        json.dumps(item)
        for item in (
            {"key": "header", "value": {"summary": "x"}},
            {"key": "lfsFile", "value": line},
        )
    )
    response = httpx2.post(
        f"{api.endpoint}/api/datasets/{REPO}/commit/main",
        content=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 400 and "was not uploaded" in response.text
    assert "x.jsonl" not in emulator.files(REPO)


def test_lfs_pointers_match_the_real_hub_recorded_in_the_client_docstring() -> None:
    """`HfApi.list_repo_tree`'s docstring shows real entries of lysandre/arxiv-nlp."""
    recorded = [
        (
            "d88b0d6a6ff9c3f8151f9d3228f57092aaea997f09af009eefd7373a77b5abb9",
            497764107,
            "8095a62ccb4d806da7666fcda07467e2d150218e",
        ),
        (
            "9be78edb5b928eba33aa88f431551348f7466ba9f5ef3daf1d552398722a5436",
            548123560,
            "64eaa9c526867e404b68f2c5d66fd78e27026523",
        ),
    ]
    for sha256, size, blob_id in recorded:
        pointer = lfs_pointer(sha256, size)
        assert (git_blob_oid(pointer), len(pointer)) == (blob_id, 134)


def test_an_unchanged_file_is_skipped_without_an_empty_commit(
    hub: tuple[HubEmulator, HfApi],
) -> None:
    emulator, api = hub
    first = commit(api, add("a.txt", "same\n"))
    again = commit(api, add("a.txt", "same\n"))
    assert again == first
    assert len(emulator.commits(REPO)) == 2  # initial commit + one


def test_tree_listing_pages_through_the_link_header(hub: tuple[HubEmulator, HfApi]) -> None:
    emulator, api = hub
    emulator.tree_page_size = 3
    commit(api, *(add(f"data/train/part-{i:05d}.jsonl", f"{i}\n") for i in range(7)))
    emulator.requests.clear()
    files = api.list_repo_files(REPO, repo_type="dataset")
    assert files == [
        ".gitattributes",
        *(f"data/train/part-{i:05d}.jsonl" for i in range(7)),
    ]
    assert sum(1 for endpoint, _ in emulator.requests if endpoint == "tree") == 4
    top = list(api.list_repo_tree(REPO, repo_type="dataset"))
    assert [(type(e), e.path) for e in top] == [(RepoFile, ".gitattributes"), (RepoFolder, "data")]


def test_info_has_sha_siblings_and_card_data(hub: tuple[HubEmulator, HfApi]) -> None:
    _, api = hub
    card = "---\nlicense: mit\nconfigs:\n- config_name: default\n  data_files: data/*.jsonl\n---\n"
    commit(api, add("README.md", card), add("data/a.jsonl", "{}\n"))
    info = api.dataset_info(REPO, files_metadata=True)
    assert info.card_data is not None and info.card_data["license"] == "mit"
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == {".gitattributes", "README.md", "data/a.jsonl"}
    assert siblings["data/a.jsonl"].blob_id == git_blob_oid(b"{}\n")
    assert siblings["data/a.jsonl"].size == 3


def test_an_invalid_card_is_refused_before_anything_is_sent(
    hub: tuple[HubEmulator, HfApi],
) -> None:
    emulator, api = hub
    with pytest.raises(ValueError, match="Invalid metadata"):
        commit(api, add("README.md", "---\nlicense: [unclosed\n---\n"))
    assert "README.md" not in emulator.files(REPO)


def test_download_and_paths_info_see_committed_files(
    hub: tuple[HubEmulator, HfApi], tmp_path: Path
) -> None:
    _, api = hub
    oid = commit(api, add("data/train/a.jsonl", '{"messages": []}\n'))
    path = hf_hub_download(
        REPO,
        "data/train/a.jsonl",
        repo_type="dataset",
        endpoint=api.endpoint,
        token=TOKEN,
        cache_dir=tmp_path,
    )
    assert Path(path).read_text() == '{"messages": []}\n'
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(
            REPO, "nope.jsonl", repo_type="dataset", endpoint=api.endpoint, cache_dir=tmp_path
        )
    infos = api.get_paths_info(
        REPO, ["data/train/a.jsonl", "data", "missing"], expand=True, repo_type="dataset"
    )
    assert [(type(i), i.path) for i in infos] == [
        (RepoFile, "data/train/a.jsonl"),
        (RepoFolder, "data"),
    ]
    assert infos[0].last_commit is not None and infos[0].last_commit.oid == oid


def test_private_repos_need_a_token_and_writes_always_do() -> None:
    with running_hub() as (_, url):
        HfApi(endpoint=url, token=TOKEN).create_repo(REPO, repo_type="dataset", private=True)
        anonymous = HfApi(endpoint=url, token=False)
        with pytest.raises(RepositoryNotFoundError):
            anonymous.repo_info(REPO, repo_type="dataset")
        wrong = HfApi(endpoint=url, token="hf_wrong")
        with pytest.raises(HfHubHTTPError) as error:
            wrong.create_repo("alice/other", repo_type="dataset")
        assert error.value.response.status_code == 401


def test_injected_statuses_reach_the_client_and_apply_nothing(
    hub: tuple[HubEmulator, HfApi],
) -> None:
    emulator, api = hub
    emulator.inject(HubFault(status=429, retry_after=7), HubFault(status=500))
    for status in (429, 500):
        with pytest.raises(HfHubHTTPError) as error:
            commit(api, add("a.txt", "a\n"))
        assert error.value.response.status_code == status
    assert error.value.response.status_code == 500
    assert "a.txt" not in emulator.files(REPO)
    commit(api, add("a.txt", "a\n"))
    assert "a.txt" in emulator.files(REPO)


def test_a_commit_held_after_it_applied_lands_while_the_client_times_out(
    hub: tuple[HubEmulator, HfApi], short_timeout: None
) -> None:
    emulator, api = hub
    emulator.inject(HubFault(kind="hang_after", hang=10))
    started = time.monotonic()
    with pytest.raises(httpx2.TimeoutException):
        commit(api, add("a.txt", "a\n"))
    assert time.monotonic() - started < 5
    assert emulator.files(REPO)["a.txt"] == b"a\n"


def test_a_commit_held_before_it_applied_does_not_land(
    hub: tuple[HubEmulator, HfApi], short_timeout: None
) -> None:
    emulator, api = hub
    emulator.inject(HubFault(kind="hang_before", hang=10))
    with pytest.raises(httpx2.TimeoutException):
        commit(api, add("a.txt", "a\n"))
    assert "a.txt" not in emulator.files(REPO)


def test_a_concurrent_commit_makes_the_read_head_stale(hub: tuple[HubEmulator, HfApi]) -> None:
    emulator, api = hub
    head = api.repo_info(REPO, repo_type="dataset").sha
    emulator.inject(HubFault(kind="concurrent_commit"))
    with pytest.raises(HfHubHTTPError) as error:
        commit(api, add("a.txt", "a\n"), parent=head)
    assert error.value.response.status_code == 412
    assert emulator.commits(REPO)[0].title == "Another writer's commit"
    new_head = api.repo_info(REPO, repo_type="dataset").sha
    commit(api, add("a.txt", "a\n"), parent=new_head)
    assert "a.txt" in emulator.files(REPO)


def test_the_commit_quota_answers_429_with_retry_after() -> None:
    now = [1000.0]
    emulator = HubEmulator(token=TOKEN, max_commits_per_hour=2, clock=lambda: now[0])
    with running_hub(emulator) as (_, url):
        api = HfApi(endpoint=url, token=TOKEN)
        api.create_repo(REPO, repo_type="dataset")
        commit(api, add("a.txt", "a\n"))
        commit(api, add("b.txt", "b\n"))
        with pytest.raises(HfHubHTTPError) as error:
            commit(api, add("c.txt", "c\n"))
        assert error.value.response.status_code == 429
        assert int(error.value.response.headers["Retry-After"]) > 3000
        now[0] += 3601
        commit(api, add("c.txt", "c\n"))


def test_a_seeded_folder_becomes_dataset_repos_readable_over_plain_http(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "owner" / "dataset"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "rows.jsonl").write_text('{"a": 1}\n')
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# A dataset\n")
    with running_hub(HubEmulator(seed=tmp_path)) as (emulator, url):
        assert set(emulator.files("owner/dataset")) == {
            ".gitattributes",
            "README.md",
            "data/rows.jsonl",
        }
        info = HfApi(endpoint=url, token=False).dataset_info("owner/dataset")
        assert info.card_data is not None and info.card_data["license"] == "mit"
        sha = info.sha
        raw = httpx2.get(f"{url}/datasets/owner/dataset/resolve/{sha}/data/rows.jsonl")
        assert raw.content == b'{"a": 1}\n' and raw.headers["X-Repo-Commit"] == sha
        ranged = httpx2.get(
            f"{url}/datasets/owner/dataset/resolve/main/data/rows.jsonl",
            headers={"Range": "bytes=1-3"},
        )
        assert ranged.status_code == 206 and ranged.content == b'"a"'


async def test_the_sandbox_serves_the_seeded_hub_and_points_uploads_at_it() -> None:
    async with Sandbox(["huggingface"]) as sandbox:
        url = sandbox.urls["huggingface"]
        repo = "MikePfunk28/resume-training-dataset"
        async with aiohttp.ClientSession() as session:
            tree = f"{url}/api/datasets/{repo}/tree/main"
            async with session.get(tree, params={"recursive": "true"}) as response:
                assert response.status == 200
                paths = [entry["path"] for entry in await response.json()]
            assert "training_data.jsonl" in paths
            async with session.get(f"{url}/datasets/{repo}/resolve/main/training_data.jsonl") as r:
                assert r.status == 200 and (await r.read()).strip()
        config = sandbox.point(parse_config({}))
        assert config.upload.endpoint == url
