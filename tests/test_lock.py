"""The lock: what a fresh machine installs is exactly what was tested.

`requirements/*.txt` pin every package (direct and transitive) to one version with its hashes,
compiled from pyproject.toml by `make lock`. These checks keep the lock and pyproject.toml
from drifting apart, and keep every installer (make, CI, the Dockerfile) on the lock.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;\\]+)(\s*;\s*([^\\]+?))?\s*\\?$")


def pins(name: str) -> dict[str, list[tuple[str, str]]]:
    """{package: [(version, marker)]} of one lock file; each pin must carry hashes."""
    found: dict[str, list[tuple[str, str]]] = {}
    lines = (LOCKS / name).read_text().splitlines()
    for index, line in enumerate(lines):
        match = PIN.match(line)
        if match is None:
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        assert "--hash=sha256:" in following, f"{name}: {match[1]} has no hash"
        found.setdefault(str(canonicalize_name(match[1])), []).append(
            (match[2], (match[4] or "").strip())
        )
    assert found, f"{name} pins nothing"
    return found


def direct(extra: str | None = None) -> list[Requirement]:
    specs = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    return [Requirement(spec) for spec in specs]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        ("runtime.txt", []),
        ("test.txt", ["test", "sandbox"]),
        ("bench.txt", ["test", "sandbox", "bench"]),
    ],
)
def test_every_dependency_is_pinned_within_the_range_pyproject_allows(
    lock: str, extras: list[str]
) -> None:
    locked = pins(lock)
    for requirement in direct() + [r for extra in extras for r in direct(extra)]:
        name = str(canonicalize_name(requirement.name))
        assert name in locked, f"{lock}: {name} is not locked (run make lock)"
        for version, _ in locked[name]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{lock}: {name}=={version} is outside {requirement.specifier} (run make lock)"
            )


def test_the_image_and_the_tests_run_the_same_versions() -> None:
    runtime, test = pins("runtime.txt"), pins("test.txt")
    for name, versions in runtime.items():
        # Markers may differ (a package only the tests need everywhere); versions may not.
        assert {v for v, _ in versions} <= {v for v, _ in test[name]}, (
            f"{name}: runtime {versions} but test {test[name]}"
        )


def test_the_lower_bounds_are_the_versions_the_oldest_lock_tests() -> None:
    """`make test-oldest` installs requirements/oldest.txt: each direct dependency at the lower
    bound pyproject.toml claims, so the claim is a tested one."""
    oldest = pins("oldest.txt")
    for requirement in direct() + direct("test") + direct("sandbox"):
        floors = [s.version for s in requirement.specifier if s.operator in (">=", "==")]
        if not floors:
            continue  # no lower bound claimed
        name = str(canonicalize_name(requirement.name))
        assert [Version(v) for v, _ in oldest[name]] == [Version(floors[0])], (
            f"{name}: pyproject.toml claims >= {floors[0]} but oldest.txt tests {oldest[name]}"
        )


def test_every_installer_installs_from_the_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r $(2)" in makefile
    assert "$(call install_locked,$(VENV),requirements/test.txt)" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --no-deps" in dockerfile
    assert "-r requirements/runtime.txt" in dockerfile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
