"""What `check-config` says about the environment a config will run in, beyond the file itself.

    problems(config)     # errors (the run would fail: exit 2) and warnings, each with its field
    online(config)       # `check-config --online`: tokens and where they come from, whether each
                         # endpoint answers, whether the paths the service writes are writable

Secrets are never printed: only the name of the variable or file that holds one.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from collector.config import Config
from collector.sources.config import (
    GitHubSourceConfig,
    HuggingFaceSourceConfig,
    KaggleSourceConfig,
    StackExchangeSourceConfig,
)

REMOTE = (
    StackExchangeSourceConfig,
    GitHubSourceConfig,
    KaggleSourceConfig,
    HuggingFaceSourceConfig,
)
WITH_TOKEN = (GitHubSourceConfig, KaggleSourceConfig, HuggingFaceSourceConfig)


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was found, for --online


def hf_token_source(token_env: str) -> str | None:
    """Where a Hugging Face token comes from: `$token_env`, else the file `hf auth login`
    saves (huggingface_hub's token path); None when there is none."""
    if token_env and os.environ.get(token_env):
        return f"${token_env}"
    from huggingface_hub import constants

    path = Path(constants.HF_TOKEN_PATH)
    try:
        if path.read_text(encoding="utf-8").strip():
            return f"{path} (hf auth login)"
    except OSError:
        pass
    return None


def problems(config: Config) -> Findings:
    """Tokens the config names but the environment lacks (Kaggle's: `check-config` prints
    which credentials each Kaggle source uses)."""
    found = Findings()
    for index, source in enumerate(config.sources):
        if not source.enabled:
            continue
        where = f"sources[{index}]"
        if isinstance(source, GitHubSourceConfig) and not os.environ.get(source.token_env):
            found.warnings.append(
                f"{where}.token_env: ${source.token_env} is not set: GitHub allows 10 searches"
                " a minute without a token"
            )
        key_env = source.key_env if isinstance(source, StackExchangeSourceConfig) else ""
        if key_env and not os.environ.get(key_env):
            found.warnings.append(f"{where}.key_env: ${key_env} is not set")
        if isinstance(source, HuggingFaceSourceConfig) and not hf_token_source(source.token_env):
            found.warnings.append(
                f"{where}.token_env: no Hugging Face token (${source.token_env} or"
                " `hf auth login`): public datasets only"
            )
    upload = config.upload
    hub = upload.enabled and upload.resolved_target == "hub"
    if hub and hf_token_source(upload.token_env) is None:
        found.errors.append(
            f"upload.token_env: the target is the Hub ({upload.repo_id}) but there is no"
            f" token: set ${upload.token_env} or run `hf auth login`"
        )
    rewrite = config.rewrite
    if rewrite.enabled and rewrite.api_key_env and not os.environ.get(rewrite.api_key_env):
        found.warnings.append(
            f"rewrite.api_key_env: ${rewrite.api_key_env} is not set (a local server needs none)"
        )
    return found


def _endpoints(config: Config) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for index, source in enumerate(config.sources):
        if source.enabled and isinstance(source, REMOTE):
            out.append((f"sources[{index}] {source.name}", source.base_url))
    if config.upload.enabled and config.upload.resolved_target == "hub":
        out.append(("upload", config.upload.endpoint or "https://huggingface.co"))
    if config.rewrite.enabled:
        out.append(("rewrite", config.rewrite.base_url))
    return out


def reachable(url: str, timeout: float = 5.0) -> str | None:
    """None when `url` answers at all (any HTTP status), else why not."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError, ValueError) as error:
        return str(getattr(error, "reason", error))


def _writable(folder: Path) -> str | None:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the service creates the rest
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as error:
        return f"{folder}: {error.strerror or error}"


def online(config: Config, timeout: float = 5.0) -> Findings:
    """The environment: tokens and where from, each endpoint's answer, writable paths."""
    found = Findings()
    for index, source in enumerate(config.sources):
        if source.enabled and isinstance(source, WITH_TOKEN) and source.token_env:
            token_env = source.token_env
            if isinstance(source, HuggingFaceSourceConfig):
                origin = hf_token_source(token_env)
            else:
                origin = f"${token_env}" if os.environ.get(token_env) else None
            found.notes.append(f"sources[{index}] {source.name}: token {origin or 'none'}")
    if config.upload.enabled and config.upload.resolved_target == "hub":
        found.notes.append(f"upload: token {hf_token_source(config.upload.token_env) or 'none'}")
    for label, url in _endpoints(config):
        problem = reachable(url, timeout)
        if problem is None:
            found.notes.append(f"{label}: {url} answers")
        else:
            found.errors.append(f"{label}: {url} does not answer ({problem})")
    layout = config.layout()
    paths = [("service.data_dir", layout.data_dir)]
    if config.state.backend == "sqlite":
        paths.append(("state.path", layout.state.parent))
    for label, path in paths:
        problem = _writable(path)
        if problem is None:
            found.notes.append(f"{label}: {path} is writable")
        else:
            found.errors.append(f"{label}: not writable: {problem}")
    return found
