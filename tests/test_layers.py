"""The core never reaches up, except through the CLI's two bridges to the Dagster side, each imported
only inside the command that needs it (docs/architecture.md, layers)."""

from __future__ import annotations

import ast

from tests.conftest import PROJECT_ROOT

BRIDGES = {"assets": {"cli/recording.py"}, "runtime": {"cli/run.py", "cli/worker.py"}, "jobs": set(),
           "schedules": set(), "definitions": set(), "resources": set()}


def _imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """(top-level package imported, whether at module level) for every import of a module."""
    module_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], id(node) in module_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], id(node) in module_level))
    return found


def test_only_the_bridges_import_the_dagster_side_and_only_lazily():
    core = PROJECT_ROOT / "orchestrator_data"
    seen = {package: set() for package in BRIDGES}
    for path in core.rglob("*.py"):
        where = path.relative_to(core).as_posix()
        for package, at_top in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if package in BRIDGES:
                assert where in BRIDGES[package], f"{where} imports {package}"
                assert not at_top, f"{where} imports {package} at import time"
                seen[package].add(where)
    assert seen["assets"] == BRIDGES["assets"] and seen["runtime"] == BRIDGES["runtime"]
