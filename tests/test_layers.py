"""Data flows one way: load -> plan -> execute -> record -> report. Lower layers never import
higher ones; the host agent and the model generator import nothing of llmops (they run alone
on hosts)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "llmops"

# Top to bottom. A module may import its own layer and any layer below it.
LAYERS = [
    ["llmops.cli", "llmops.cli_bench", "llmops.apply", "llmops.facts_command", "llmops.model_command",
     "llmops.__main__"],
    ["llmops.report"],
    ["llmops.execute"],
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
