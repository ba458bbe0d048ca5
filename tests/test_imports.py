"""The shape of the imports, read from the source with `ast` (nothing is imported, so this runs in
milliseconds): no import cycle between packages, and nothing outside the search package reaches into
the sync for a lock, an error helper or a source table.

A "package" here is a folder of the code (orchestrator_data.search, orchestrator_data.postgres,
assets, ...); a module that sits directly in orchestrator_data/ (policy_files, connections, ...) is
a node of its own, since those are the shared helpers every domain may use. Imports inside functions
count too: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = "orchestrator_data"
SYNC = "orchestrator_data.search.sync"
# What the rest of the code may take from the sync: running it and creating the indices it fills.
# Locks, errors, source tables, watermarks and bulk writes have modules of their own.
SYNC_ENTRY_POINTS = {"sync", "sync_index", "sync_existing", "create_indices"}  # running it, or creating the indices


def _modules() -> dict[str, Path]:
    """Every module of the project's code (not tests, not bench), by dotted name."""
    found: dict[str, Path] = {}
    tops = [p for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists() and p.name != "tests"]
    for top in tops:
        for path in top.rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in ROOT.glob("*.py"):
        found[path.stem] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for each import statement in the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names]))
    return found


def _targets(imported: str, names: list[str]) -> set[str]:
    """The project's modules an import statement loads: `from a import b` loads a.b when b is a module."""
    targets = {imported} if imported in MODULES else set()
    targets |= {f"{imported}.{n}" for n in names if f"{imported}.{n}" in MODULES}
    return targets


def _node(module: str) -> str:
    """The package a module belongs to; a module directly in orchestrator_data/ is its own node."""
    parent = module.rpartition(".")[0]
    if not parent or parent == CORE or MODULES[module].name == "__init__.py":
        return module
    return parent


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        for imported, names in _imports(name, path):
            for target in _targets(imported, names):
                if _node(target) != _node(name):
                    graph.setdefault(_node(name), set()).add(_node(target))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in graph.get(node, ()):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_graph_is_read_from_the_code():
    # guards the test itself: a resolver that found nothing would pass every check below
    graph = _package_graph()
    assert "orchestrator_data.policy_files" in graph["orchestrator_data.search"]
    assert "orchestrator_data.postgres" in graph["orchestrator_data.search"]
    assert len(MODULES) > 100


def test_no_import_cycle_between_packages():
    assert _cycles(_package_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_outside_search_takes_a_lock_an_error_or_a_source_from_the_sync():
    taken: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if name.startswith("orchestrator_data.search"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for imported, names in _imports(name, path):
            if imported == SYNC:
                taken.setdefault(name, set()).update(names)
            elif imported == "orchestrator_data.search" and "sync" in names:
                # `from orchestrator_data.search import sync`: what it uses is `sync.<attribute>`
                taken.setdefault(name, set()).update(
                    node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name) and node.value.id == "sync")
    beyond = {module: sorted(names - SYNC_ENTRY_POINTS) for module, names in taken.items()
              if names - SYNC_ENTRY_POINTS}
    assert beyond == {}
    assert taken, "the CLI and the assets run the sync: the check found none of them"
