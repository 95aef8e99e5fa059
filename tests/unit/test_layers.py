"""The layout tells the story (ARCHITECTURE.md): each package imports only the layers its docstring allows.

Read from the code's own imports (ast: every `import` and `from ... import`, TYPE_CHECKING and function-level
ones included), so a shortcut across layers fails here, naming the file and what it imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lambdas", "txpipe_cli", "infra")

# A module's layer: the longest prefix listed here. The shared top-level modules of txpipe_cli (config, errors,
# output, targets...) are "txpipe_cli".
LAYERS = ("lambdas.core", "lambdas.functions", "lambdas", "infra", "txpipe_cli.local", "txpipe_cli.aws",
          "txpipe_cli.dashboard", "txpipe_cli.commands", "txpipe_cli")

# What each layer may import of the project (besides itself). The functions never see the CLI; the core never
# sees a handler; a target never sees the other target, a command or the dashboard; only commands see commands.
MAY_IMPORT = {
    "lambdas.core": set(),
    "lambdas.functions": set(),
    "lambdas": {"lambdas.core", "lambdas.functions"},
    "infra": set(),
    "txpipe_cli": {"lambdas.core", "lambdas.functions"},
    "txpipe_cli.local": {"lambdas.core", "lambdas.functions", "lambdas", "txpipe_cli"},
    "txpipe_cli.aws": {"lambdas.core", "lambdas.functions", "lambdas", "infra", "txpipe_cli"},
    "txpipe_cli.dashboard": {"lambdas.core", "txpipe_cli"},
    "txpipe_cli.commands": {"lambdas.core", "lambdas.functions", "lambdas", "infra", "txpipe_cli",
                            "txpipe_cli.local", "txpipe_cli.aws", "txpipe_cli.dashboard"},
}
# The two places that compose layers above their own: the target factory and the root app.
COMPOSERS = {"txpipe_cli.targets": {"txpipe_cli.local", "txpipe_cli.aws"},
             "txpipe_cli.app": {"txpipe_cli.commands"}}


def layer(module: str) -> str | None:
    return next((name for name in LAYERS if module == name or module.startswith(name + ".")), None)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def crossings() -> list[str]:
    """Every import of a layer its importer may not import, as 'file: module (layer -> layer)'."""
    wrong = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = module_name(path)
            own = layer(name)
            assert own is not None, name
            allowed = {own} | MAY_IMPORT[own] | COMPOSERS.get(name, set())
            for imported in sorted(imports(path)):
                theirs = layer(imported)
                if theirs is not None and theirs not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)}: {imported} ({own} -> {theirs})")
    return wrong


def test_every_package_imports_only_the_layers_it_may() -> None:
    assert crossings() == []


def test_a_shortcut_across_layers_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a core module that imported the CLI would be named."""
    source = ROOT / "lambdas" / "core" / "reasons.py"
    original = Path.read_text

    def read_text(path: Path, *args: object, **kwargs: object) -> str:
        text = original(path, *args, **kwargs)  # type: ignore[arg-type]
        return text + "\nfrom txpipe_cli.output import console\n" if path == source else text

    monkeypatch.setattr(Path, "read_text", read_text)
    assert crossings() == ["lambdas/core/reasons.py: txpipe_cli.output.console (lambdas.core -> txpipe_cli)"]


def test_every_package_says_what_lives_there_and_who_may_import_it() -> None:
    """Each package's docstring says what it imports ("Imports: ...") and what imports it ("Imported by ...")."""
    missing = []
    for package in PACKAGES:
        for init in sorted((ROOT / package).rglob("__init__.py")):
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            if "imports:" not in doc.lower() or "imported by" not in doc.lower():
                missing.append(str(init.relative_to(ROOT)))
    assert missing == []
