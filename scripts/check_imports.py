"""Check the import graph of collector/ and processors/: no cycles, no upward imports.

Run from anywhere: `python scripts/check_imports.py [repository]`. It reads the source with `ast`
(nothing is imported), prints every violation with its file and line, and exits 1 if there is any.
tests/test_architecture.py runs it with the tests, so CI does too.

Every import counts: at module level, inside a function, and under `if TYPE_CHECKING:` (a type
annotation is a dependency too; `Service` in a component's signature is the component reaching
into the service). An import of a submodule (`from collector.state import base`) is an import of
that submodule, and when it runs (not under TYPE_CHECKING) also of every package above it that the
importer is not inside: importing collector.sources.config runs collector/sources/__init__.py
first, and with it every module that __init__ imports.

The layering rule:

1. No cycles. A module never imports, directly or through others, a module that imports it.
2. processors/ never imports collector/: processors are pure, and the service uses them.
3. Imports go down or across the package tree, never up. A module may import its siblings and
   their children, and any other branch (collector.upload.chunks imports collector.sinks.files).
   From a package above its own it imports only what sits below its branch: an import is upward
   when the imported module depends, directly or through others, on the importing module's
   branch (collector.upload.component importing collector.service, which imports
   collector.upload.component to build it). Such an import is a cycle between a module and a
   branch, even when no single module cycle closes yet.
   Config leaves are the one exception: a module named `config` gathers its children's configs
   (collector.config holds collector.upload.config), and anything may import it. They are also
   left out of the paths, so a module reached only through config leaves does not count.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("collector", "processors")
KINDS = ("module", "function", "type-only")  # where an import runs: at import, on a call, never


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: Path  # the importing file, relative to the repository
    line: int
    kind: str  # "module", "function" or "type-only"
    through: str = ""  # the submodule imported, when the target is the package that holds it

    def where(self) -> str:
        notes = [] if self.kind == "module" else [self.kind]
        if self.through:
            notes.append(f"importing {self.through} runs {self.target}'s __init__")
        note = f" ({'; '.join(notes)})" if notes else ""
        return f"{self.path}:{self.line}{note}"


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement, with where it runs: "module", "function" or "type-only"."""

    def walk(node: ast.AST, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, kind
            elif isinstance(child, ast.If) and is_type_checking(child.test):
                for statement in child.body:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), "type-only")
                for statement in child.orelse:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), kind)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, "type-only" if kind == "type-only" else "function")
            else:
                yield from walk(child, kind)

    yield from walk(tree, "module")


def targets(
    name: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: dict[str, Path]
) -> Iterator[str]:
    """The project modules one import statement names (third-party ones are skipped)."""
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            stem = ".".join([*base, *([node.module] if node.module else [])])
        else:
            stem = node.module or ""
        candidates = [
            f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem
            for alias in node.names
        ]
    for candidate in candidates:
        while candidate and candidate not in known:  # `import a.b.c` where c is a name in a.b
            candidate = candidate.rpartition(".")[0]
        if candidate:
            yield candidate


def graph(root: Path) -> list[Edge]:
    known = modules(root)
    edges: dict[tuple[str, str], Edge] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, kind in imports(tree):
            for target in targets(name, path.name == "__init__.py", node, known):
                where = path.relative_to(root)
                found = [Edge(name, target, where, node.lineno, kind)]
                parts = target.split(".")
                for package in (".".join(parts[:end]) for end in range(1, len(parts))):
                    inside = f"{name}.".startswith(f"{package}.")
                    if package in known and not inside and kind != "type-only":
                        found.append(Edge(name, package, where, node.lineno, kind, target))
                for edge in found:
                    if edge.target == name:
                        continue
                    # One edge per pair: the first in the file that runs earliest.
                    previous = edges.get((name, edge.target))
                    if previous is None or KINDS.index(kind) < KINDS.index(previous.kind):
                        edges[(name, edge.target)] = edge
    # Direct imports first, so that a chain shows them rather than the package they run.
    return sorted(edges.values(), key=lambda edge: (edge.source, bool(edge.through), edge.target))


def is_config(module: str) -> bool:
    return module.rpartition(".")[2] == "config"


def package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def shortest_path(
    adjacency: dict[str, list[Edge]],
    start: str,
    goal: set[str],
    avoid: frozenset[str] = frozenset(),
) -> list[Edge] | None:
    """The shortest chain of imports from `start` to any module in `goal`, not through `avoid`."""
    came_from: dict[str, Edge | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for edge in adjacency.get(module, []):
            if edge.target in goal:
                chain = [edge]
                while (step := came_from[chain[-1].source]) is not None:
                    chain.append(step)
                return chain[::-1]
            if edge.target not in came_from and edge.target not in avoid:
                came_from[edge.target] = edge
                queue.append(edge.target)
    return None


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One shortest cycle through every module that is on a cycle, without repeats."""
    adjacency: dict[str, list[Edge]] = {}
    for edge in edges:
        adjacency.setdefault(edge.source, []).append(edge)
    found: list[list[Edge]] = []
    seen: set[frozenset[tuple[str, str]]] = set()
    for module in sorted(adjacency):
        chain = shortest_path(adjacency, module, {module})
        if chain is None:
            continue
        key = frozenset((edge.source, edge.target) for edge in chain)
        if key not in seen:
            seen.add(key)
            found.append(chain)
    return found


def upward(edges: list[Edge], known: dict[str, Path]) -> list[tuple[Edge, list[Edge]]]:
    """Imports of a module above the importer's branch, with the chain that leads back down."""
    adjacency: dict[str, list[Edge]] = {}
    for edge in edges:
        adjacency.setdefault(edge.source, []).append(edge)
    configs = {module for module in known if is_config(module)}
    found = []
    for edge in edges:
        if is_config(edge.target):
            continue
        above = package_of(edge.target, known[edge.target])
        here = package_of(edge.source, known[edge.source])
        if not here.startswith(above + ".") or edge.target == here:
            continue  # the same package, a child, another branch, or the package's own __init__
        # The importer's branch: the child of `above` that holds it (collector.upload).
        branch = ".".join(here.split(".")[: above.count(".") + 2])
        members = {m for m in known if m == branch or m.startswith(branch + ".")}
        chain = shortest_path(adjacency, edge.target, members - configs, avoid=frozenset(configs))
        if chain is not None:
            found.append((edge, chain))
    return found


def violations(root: Path = ROOT) -> list[str]:
    known = modules(root)
    edges = graph(root)
    lines = []
    for chain in cycles(edges):
        names = " -> ".join([chain[0].source, *(edge.target for edge in chain)])
        lines.append(f"cycle: {names}")
        lines += [f"    {edge.source} -> {edge.target}  {edge.where()}" for edge in chain]
    for edge in edges:
        if (edge.source.partition(".")[0], edge.target.partition(".")[0]) == PACKAGES[::-1]:
            lines.append(f"processors imports collector: {edge.source} -> {edge.target}")
            lines.append(f"    {edge.where()}")
    for edge, chain in upward(edges, known):
        lines.append(f"upward import: {edge.source} -> {edge.target}  {edge.where()}")
        lines += [f"    because {step.source} -> {step.target}  {step.where()}" for step in chain]
    return lines


def main() -> int:
    lines = violations(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    for line in lines:
        print(line)
    if lines:
        count = sum(not line.startswith(" ") for line in lines)
        print(f"{count} import violation(s): see the rule in {Path(__file__).name}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
