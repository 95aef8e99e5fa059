"""Where test support lives (issue 17, item 4), held: helpers that tests share are in tests/support/ (which tests
and benchmarks may import) and shared fixtures in a tier's conftest.py, so no test module imports another; the
support package and the benchmarks take nothing from tests but tests.support; every support module and every
conftest says what it holds; and no module of the project grows past MAX_LINES.

Imports are read with `ast` (a module's own and its functions' alike), not searched for as text.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400
TREES = ("lambdas", "txpipe_cli", "tests", "benchmarks")


def python_files(*trees: str) -> list[Path]:
    return sorted(path for tree in trees for path in (ROOT / tree).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every module the file imports: `from a.b import c` gives a.b and a.b.c (c may be a
    module), relative imports resolved against the file's package."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def is_test_module(module: str) -> bool:
    """tests.<tier>.test_* (or a name inside one)."""
    parts = module.split(".")
    return parts[0] == "tests" and any(part.startswith("test_") for part in parts[1:])


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_no_module_imports_a_test_module() -> None:
    """Tests and benchmarks take what they share from tests/support/ (and fixtures from a conftest.py), never
    from a test module."""
    found = [f"{where(path, line)} imports {module}" for path in python_files("tests", "benchmarks")
             for line, module in imported(path) if is_test_module(module)]
    assert found == []


def test_support_and_benchmarks_take_only_support_from_tests() -> None:
    """tests/support/ and benchmarks/ import nothing under tests/ but tests.support: not a test module, a tier's
    helpers or a conftest."""
    files = python_files("benchmarks") + sorted((ROOT / "tests" / "support").rglob("*.py"))
    found = [f"{where(path, line)} imports {module}" for path in files for line, module in imported(path)
             if module.split(".")[0] == "tests" and module not in ("tests", "tests.support")
             and not module.startswith("tests.support.")]
    assert found == []


def test_support_modules_and_conftests_say_what_they_hold() -> None:
    files = sorted((ROOT / "tests" / "support").rglob("*.py")) + sorted((ROOT / "tests").rglob("conftest.py"))
    silent = [str(path.relative_to(ROOT)) for path in files if not ast.get_docstring(ast.parse(path.read_text()))]
    assert silent == []


def test_no_module_is_longer_than_the_limit() -> None:
    """Every module of the project (its code, its tests, its benchmarks) stays within MAX_LINES lines."""
    long = {str(path.relative_to(ROOT)): lines for path in python_files(*TREES)
            if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
