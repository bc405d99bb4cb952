"""llmops reads Ansible inventories as ansible-core does: the corpus, compared with `ansible-inventory`.

Every folder under corpus/ holds one source named `inventory*` (a file, or a folder for a directory
source) and whatever sits beside it (group_vars/, host_vars/). For each, the JSON of
`to_ansible_list(load(source))` must equal the text `ansible-inventory -i source --list` prints, and
the same for --graph on a selection; a few --host calls check single hosts, Ansible's implicit localhost included.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from llmops.load.ansible import load
from llmops.load.ansible_list import dumps, to_ansible_host, to_ansible_list, to_graph

from .ansible_cli import require_ansible, run_many

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
# --graph shows the same structure as --list; these cases cover its shapes (nesting, shared children,
# empty groups, folders), and leaving out the rest keeps the run short (each call costs about a second).
GRAPH_CASES = ["02-ini-children", "03-ini-ranges", "06-yaml-nested", "09-directory-source", "10-precedence-depth",
               "15-yaml-all-hosts-and-ungrouped", "17-empty-yaml"]
HOST_CALLS = [("11-connection-vars", "gpu4"), ("07-group-vars-folders", "h2"), ("02-ini-children", "localhost"),
              ("05-yaml-typed", "typed_host")]


def source_of(case: str) -> Path:
    (source,) = [p for p in (CORPUS / case).iterdir() if p.name.startswith("inventory")]
    return source


@pytest.fixture(scope="module")
def ansible(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], subprocess.CompletedProcess]:
    """ansible-inventory's answers for the whole corpus, run in parallel once for this module."""
    require_ansible()
    calls: dict[tuple[str, str], list[str]] = {}
    for case in CASES:
        source = str(source_of(case).resolve())
        calls[(case, "--list")] = ["-i", source, "--list"]
        if case in GRAPH_CASES:
            calls[(case, "--graph")] = ["-i", source, "--graph"]
    for case, host in HOST_CALLS:
        calls[(case, host)] = ["-i", str(source_of(case).resolve()), "--host", host]
    results = run_many(list(calls.values()), tmp_path_factory.mktemp("ansible-inventory"))
    return dict(zip(calls, results, strict=False))


def stdout_of(ansible: dict, key: tuple[str, str]) -> str:
    proc = ansible[key]
    assert proc.returncode == 0, f"ansible-inventory failed on {key}:\n{proc.stderr}"
    return proc.stdout.rstrip("\n")


def test_corpus_is_broad() -> None:
    sources = [source_of(c) for c in CASES]
    assert len(CASES) >= 12
    assert any(s.suffix == ".ini" for s in sources) and any(s.suffix in (".yml", ".yaml") for s in sources)
    assert any(s.is_dir() for s in sources), "a directory source"
    assert any((s.parent / "group_vars").is_dir() and (s.parent / "host_vars").is_dir() for s in sources)


@pytest.mark.parametrize("case", CASES)
def test_list_matches_ansible_inventory(case: str, ansible: dict) -> None:
    theirs = stdout_of(ansible, (case, "--list"))
    ours = dumps(to_ansible_list(load(source_of(case))))
    assert ours == theirs


@pytest.mark.parametrize("case", GRAPH_CASES)
def test_graph_matches_ansible_inventory(case: str, ansible: dict) -> None:
    assert to_graph(load(source_of(case))) == stdout_of(ansible, (case, "--graph"))


@pytest.mark.parametrize(("case", "host"), HOST_CALLS)
def test_host_matches_ansible_inventory(case: str, host: str, ansible: dict) -> None:
    ours, theirs = to_ansible_host(load(source_of(case)), host), json.loads(stdout_of(ansible, (case, host)))
    # The implicit localhost runs "this Python": ansible-inventory's is the same venv's python3 link.
    for found in (ours, theirs):
        if "ansible_python_interpreter" in found and host == "localhost":
            found["ansible_python_interpreter"] = os.path.realpath(found["ansible_python_interpreter"])
    assert dumps(ours) == dumps(theirs)


def test_unreadable_file_in_a_folder_is_skipped_with_a_warning_as_ansible_does(ansible: dict) -> None:
    case = "09-directory-source"
    inventory = load(source_of(case))
    notes = [w for w in inventory.warnings if w.file.endswith("notes")]
    assert notes and notes[0].line == 1 and "skipped" in notes[0].message
    assert "notes" in ansible[(case, "--list")].stderr  # Ansible warns about the same file
    assert "box4" in inventory.hosts  # and reads the rest, subfolders included


def test_ansible_core_version_is_recorded() -> None:
    version = require_ansible()
    # The corpus pins ansible-core 2.19 behaviour: `_meta.profile`, literal_eval'd [group:vars] values.
    major, minor = (int(x) for x in version.split(".")[:2])
    assert (major, minor) >= (2, 19), f"ansible-core {version} predates the behaviour the corpus encodes"
    assert json.loads(dumps(to_ansible_list(load(source_of("17-empty-yaml")))))["_meta"]["profile"]
