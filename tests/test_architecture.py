"""The import graph: no cycles, no upward imports (the rule is at the top of
scripts/check_imports.py). The script runs on the repository, and on small made-up trees that
show what it catches."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_imports.py"


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, check=False
    )


def tree(root: Path, files: dict[str, str]) -> Path:
    """A made-up project: {"collector/upload/uploader.py": source}; every package gets an
    __init__.py (empty unless given)."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    for package in ("collector", "processors"):
        for folder in [root / package, *(root / package).rglob("*")]:
            if folder.is_dir() and not (folder / "__init__.py").exists():
                (folder / "__init__.py").write_text("")
    return root


def test_the_repository_has_no_import_cycles_and_no_upward_imports() -> None:
    result = check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "collector/config.py": "from collector.upload.config import UploadConfig\n",
            "collector/upload/config.py": "class UploadConfig: ...\n",
            "collector/upload/uploader.py": "from collector.config import Config\n",
            "collector/service.py": "from collector.upload.uploader import Uploader\n",
            "processors/records.py": "",
        },
    )
    result = check(root)
    assert (result.returncode, result.stdout) == (0, "")


def test_a_cycle_through_a_function_level_import_fails(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "collector/service.py": "from collector.components import Component\n",
            "collector/components.py": """
                def build():
                    from collector.service import Service
            """,
        },
    )
    result = check(root)
    assert result.returncode == 1
    assert "cycle: collector.components -> collector.service -> collector.components" in (
        result.stdout
    )
    assert "collector/components.py:3 (function)" in result.stdout


def test_a_type_only_import_is_a_dependency_too(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "collector/service.py": "import collector.metrics\n",
            "collector/metrics.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from collector.service import Service
            """,
        },
    )
    result = check(root)
    assert result.returncode == 1
    assert "collector/metrics.py:4 (type-only)" in result.stdout


def test_importing_a_module_runs_its_package_init_and_that_can_close_a_cycle(
    tmp_path: Path,
) -> None:
    root = tree(
        tmp_path,
        {
            "collector/sources/__init__.py": "from collector.sources.github import GitHub\n",
            "collector/sources/config.py": "",
            "collector/sources/github.py": "from collector.http import Client\n",
            "collector/http.py": "from collector.sources.config import SourceConfig\n",
        },
    )
    result = check(root)
    assert result.returncode == 1
    assert "cycle: collector.http -> collector.sources -> collector.sources.github" in (
        result.stdout
    )
    assert "importing collector.sources.config runs collector.sources's __init__" in (result.stdout)


def test_a_component_importing_the_service_that_builds_it_is_an_upward_import(
    tmp_path: Path,
) -> None:
    """No module cycle closes yet (nothing imports upload.uploader's sibling back), but the
    upload branch would depend on the service above it."""
    root = tree(
        tmp_path,
        {
            "collector/service.py": "from collector.upload.uploader import Uploader\n",
            "collector/upload/uploader.py": "",
            "collector/upload/component.py": "from collector.service import Service\n",
        },
    )
    result = check(root)
    assert result.returncode == 1
    assert "cycle" not in result.stdout
    assert "upward import: collector.upload.component -> collector.service" in result.stdout
    assert "because collector.service -> collector.upload.uploader" in result.stdout


def test_a_config_leaf_above_may_be_imported_though_it_gathers_the_branch_config(
    tmp_path: Path,
) -> None:
    root = tree(
        tmp_path,
        {
            "collector/config.py": "from collector.upload.config import UploadConfig\n",
            "collector/upload/config.py": "",
            "collector/logging.py": "from collector.config import Config\n",
            "collector/upload/uploader.py": "from collector.logging import Logger\n",
        },
    )
    assert check(root).returncode == 0


def test_processors_never_import_the_collector(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "collector/config.py": "",
            "processors/chain.py": "from collector.config import Config\n",
        },
    )
    result = check(root)
    assert result.returncode == 1
    assert "processors imports collector: processors.chain -> collector.config" in result.stdout
