"""The project's layering, read from its imports with `ast`.

Every import counts, including those inside functions and under `TYPE_CHECKING`: lazy
imports were used to hide cycles, and a type-only import is still a dependency of the code.
Importing `a.b.c` is an edge to `a.b.c` only; the implicit import of its parent packages is
not counted (it would make every package's `__init__` look cyclic).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("bot", "handlers", "knowledge", "storage")
PACKAGES = (*PRODUCT, "testing")
# Third-party libraries that reach the network or a database, or read the bot's settings.
IO_LIBRARIES = ("aiohttp", "aioimaplib", "aiosmtplib", "alembic", "asyncpg", "httpx",
                "pydantic_settings", "requests", "sqlalchemy", "sqlmodel", "telegram",
                "urllib.request")


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target, as written and as resolved to a project module."""

    importer: str
    target: str  # the module named (`a.b` for `from a.b import c` when c is not a module)
    line: int


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every Python module of the project's packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        base = root / package
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            found[_module_name(root, path)] = path
    return found


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module an `ImportFrom` names, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, path.name == "__init__.py")
            for alias in node.names:
                # `from bot.services import outbox` imports the module bot.services.outbox.
                candidate = f"{source}.{alias.name}"
                yield Import(module, candidate if candidate in modules else source, node.lineno)


@cache
def _graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, tuple[Import, ...]]:
    """Each project module's imports (project and third-party alike)."""
    modules = _modules(root, packages)
    return {name: tuple(_imports_of(name, path, modules)) for name, path in modules.items()}


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _project_edges(root: Path = ROOT,
                   packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module → the project modules it imports."""
    modules = _modules(root, packages)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, imports in _graph(root, packages).items():
        for imp in imports:
            target = imp.target
            # `import a.b.c` or `from a.b.c.d import x` where d is a class: nearest module.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def _shortest_cycle(start: str, members: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest import path from `start` back to itself inside one component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges[node] & members):
                if child == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = previous[node]
                    return [start, *reversed(path[1:]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")  # pragma: no cover


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each module caught in a cycle, deduplicated."""
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for component in _strongly_connected(edges):
        members = set(component)
        for module in component:
            cycle = _shortest_cycle(module, members, edges)
            # The same loop read from another of its modules is the same cycle.
            ring = cycle[:-1]
            pivot = ring.index(min(ring))
            key = tuple(ring[pivot:] + ring[:pivot])
            if key not in seen:
                seen.add(key)
                cycles.append([*key, key[0]])
    return sorted(cycles)


def _violations(importers: Iterable[str], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for module in sorted(importers):
        path = _modules()[module].relative_to(ROOT)
        for imp in _graph()[module]:
            if _under(imp.target, *forbidden):
                found.append(f"{path}:{imp.line} imports {imp.target}")
    return found


def _in(*prefixes: str) -> list[str]:
    return [m for m in _modules() if _under(m, *prefixes)]


def test_the_walk_sees_the_project() -> None:
    """A guard for the checks below: they are worthless if the walk finds nothing."""
    edges = _project_edges()
    assert {"bot.config", "bot.runtime", "handlers.telegram", "storage.db"} <= set(edges)
    # `from bot.services import outbox` is an import of the module bot.services.outbox.
    assert "bot.services.outbox" in edges["bot.services.relay"]
    assert {"bot.catalogue", "bot.services.types"} <= edges["handlers.telegram"]
    # Imports inside a function body count (bot.cli imports its commands lazily).
    assert any(_under(t, "bot.runtime") for t in edges["bot.cli"])


def test_the_walk_counts_hidden_imports(tmp_path: Path) -> None:
    """Lazy, type-only and relative imports are edges; a cycle through them is found."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text("def f():\n    from pkg import top\n")
    (package / "top.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import json\n"
        "if TYPE_CHECKING:\n    from pkg.sub.leaf import f\n"
    )
    (package / "other.py").write_text("from .sub import leaf\nfrom .top import json\n")
    edges = _project_edges(tmp_path, ("pkg",))
    assert edges == {
        "pkg": set(),
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.top"},
        "pkg.top": {"pkg.sub.leaf"},
        "pkg.other": {"pkg.sub.leaf", "pkg.top"},
    }
    assert import_cycles(edges) == [["pkg.sub.leaf", "pkg.top", "pkg.sub.leaf"]]


def test_cycle_detection_reports_the_path() -> None:
    """The cycle finder itself, on a made-up graph: a → b → c → a, and d → e → d."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    components = _strongly_connected(edges)
    assert sorted(components) == [["a", "b", "c"], ["d", "e"]]
    assert _shortest_cycle("a", {"a", "b", "c"}, edges) == ["a", "b", "c", "a"]
    assert import_cycles(edges) == [["a", "b", "c", "a"], ["d", "e", "d"]]


def test_no_import_cycle() -> None:
    """No module of the project imports itself back, directly or through others."""
    edges = _project_edges()
    cycles = import_cycles(edges)
    components = _strongly_connected(edges)
    assert not cycles, (
        "modules importing each other in a loop:\n"
        + "\n".join("  {" + ", ".join(c) + "}" for c in components)
        + "\nwith these cycles (the shortest through each module):\n"
        + "\n".join("  " + " → ".join(c) for c in cycles)
    )


def test_knowledge_is_pure() -> None:
    """Knowledge reads files and computes: no storage, bot, handlers, network or settings."""
    found = _violations(_in("knowledge"), ("bot", "handlers", "storage", "testing",
                                           *IO_LIBRARIES))
    assert not found, "\n".join(found)


def test_storage_knows_no_upper_layer() -> None:
    """Storage is the bottom layer: it imports nothing from bot, handlers or knowledge."""
    found = _violations(_in("storage"), ("bot", "handlers", "knowledge", "testing"))
    assert not found, "\n".join(found)


def test_config_imports_no_service() -> None:
    """Reading the settings must not load the services (nor what they import)."""
    found = _violations(["bot.config"], ("bot.services", "bot.runtime", "handlers"))
    assert not found, "\n".join(found)


def test_handlers_depend_on_ports_not_on_runtime() -> None:
    """Handlers see the services through `handlers.ports`, never the runtime's wiring."""
    found = _violations(_in("handlers"), ("bot.runtime",))
    assert not found, "\n".join(found)


def test_services_know_nothing_of_telegram() -> None:
    """Services produce messages; the channels' adapters (handlers) deliver them."""
    found = _violations(_in("bot.services"), ("handlers", "telegram", "bot.runtime"))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("package", PRODUCT)
def test_product_does_not_import_test_doubles(package: str) -> None:
    """Only the terminal chat (`relais chat`) runs on the doubles of `testing`."""
    importers = [m for m in _in(package) if m != "bot.terminal"]
    found = _violations(importers, ("testing",))
    assert not found, "\n".join(found)
