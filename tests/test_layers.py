"""Data flows one way: load -> plan -> execute -> record -> report. Lower layers never import
higher ones; the host agent and the model generator import nothing of llmops (they run alone
on hosts)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "llmops"

# Top to bottom. A module may import its own layer and any layer below it.
LAYERS = [
    ["llmops.cli", "llmops.cli_bench", "llmops.cli_docs", "llmops.cli_quality", "llmops.apply",
     "llmops.facts_command", "llmops.model_command", "llmops.__main__"],
    ["llmops.report"],
    ["llmops.execute"],
    ["llmops.quality"],
    ["llmops.record"],
    ["llmops.bench", "llmops.telemetry", "llmops.backends"],
    ["llmops.plan"],
    ["llmops.provision"],
    ["llmops.plugins"],
    ["llmops.load"],
    ["llmops.errors", "llmops.shell", "llmops"],
]
STANDALONE = {"llmops.agent.hostagent", "llmops.provision.tinymodel"}


def layer_of(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                if best is None or len(name) > best[1]:
                    best = (i, len(name))
    assert best is not None, module
    return best[0]


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llmops"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("llmops")]
    return found


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = path
    return out


def test_lower_layers_never_import_higher_ones() -> None:
    wrong = []
    for name, path in modules().items():
        if name in STANDALONE or name.startswith("llmops.templates"):
            continue
        for imported in imports(path):
            if layer_of(imported) < layer_of(name):
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_host_side_scripts_stand_alone() -> None:
    for name in STANDALONE:
        assert imports(modules()[name]) == [], name


# Cycles that another change is removing; each pair here is a known debt, to be dropped when fixed.
# (Empty: load.ansible <-> load.inventory went when load.sources took the choice of reader.)
KNOWN_CYCLES: set[frozenset[str]] = set()


def imported_modules(path: Path, known: dict[str, Path]) -> set[str]:
    """The llmops modules a file imports, at any depth (in functions too): `from llmops.x import y`
    names llmops.x.y when y is a module, else llmops.x."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llmops"):
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("llmops")}
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target in imported_modules(path, known):
            # A package's __init__ importing its own modules (and those importing siblings) is how
            # packages re-export; only imports between different modules can form a cycle.
            if target in known and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    """Imports inside functions count too: a lazy import hides a cycle, it does not remove it."""
    found = [c for c in cycles(import_graph()) if frozenset(c) not in KNOWN_CYCLES]
    assert found == []


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_every_package_is_installed_by_setup_cfg() -> None:
    """`make quickstart` does a real `pip install .`: a package missing from setup.cfg's list
    (llmops.quality was) works in the editable test install and breaks the installed tool."""
    import configparser

    config = configparser.ConfigParser()
    root = PACKAGE.parent
    config.read(root / "setup.cfg")
    listed = {line.strip() for line in config["options"]["packages"].splitlines() if line.strip()}
    found = {".".join(p.parent.relative_to(root).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set(), f"packages not installed by pip install .: {sorted(found - listed)}"


def test_reading_a_run_loads_no_http_client() -> None:
    """report, compare and docs read files only: they must not pay for (or depend on) the
    load generator's aiohttp stack. quality.Completion once pulled it in through the runner."""
    import subprocess
    import sys

    code = ("import sys, llmops.report.command, llmops.report.compare, llmops.report.html, "
            "llmops.report.quality, llmops.report.setupdoc, llmops.record.reader; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
