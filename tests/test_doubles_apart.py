"""The test doubles stay out of the product: only `relais chat` uses one, when it runs."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("bot", "handlers", "knowledge", "storage")


def _imports_of_testing(tree: ast.AST) -> list[tuple[int, bool]]:
    """(line, at module level) of every import of the `testing` package in a module."""
    found: list[tuple[int, bool]] = []
    top_level = {id(node) for node in getattr(tree, "body", [])}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "testing" or name.startswith("testing.") for name in names):
            found.append((node.lineno, id(node) in top_level))
    return found


def test_the_product_imports_no_test_double_except_the_terminal_when_it_runs() -> None:
    users: dict[str, list[tuple[int, bool]]] = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            found = _imports_of_testing(ast.parse(path.read_text(encoding="utf-8")))
            if found:
                users[str(path.relative_to(ROOT))] = found
    assert set(users) == {"bot/terminal.py"}
    # At module level only under `if TYPE_CHECKING:` (an `if` block, not the module body).
    assert not any(top for _line, top in users["bot/terminal.py"])


def test_the_doubles_are_installed_with_the_product() -> None:
    # `relais chat` imports testing.botapi at run time, from an installed copy too.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "testing*" in config["tool"]["setuptools"]["packages"]["find"]["include"]
