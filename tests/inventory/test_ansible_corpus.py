"""Ansible's own inventory test inputs (ansible_corpus/, see its README) read by llmops as by ansible-core.

Every input goes through `ansible-inventory -i INPUT --list` (the oracle, ansible-core 2.19 from the
test extra) and through llmops (`load_inventory`, then the --list text). Where Ansible reads it, the
text must be equal byte for byte; where Ansible refuses it, llmops must refuse it too with a located
error (exit 2, nothing started), except for the few cases in EXCEPTIONS, each with its reason.
Inputs that are plugin configs (constructed, generator...) go through ansible-inventory inside llmops
as well: that is the feature (every plugin a lab uses works), and the test shows the plumbing is exact.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from llmops.errors import ConfigError
from llmops.load.ansible_list import dumps, to_ansible_list
from llmops.load.sources import load_inventory

from .ansible_cli import isolated_env, require_ansible, run_many

CORPUS = Path(__file__).parent / "ansible_corpus"
MANIFEST = json.loads((CORPUS / "MANIFEST.json").read_text())
CASES = sorted(MANIFEST)

# Inputs Ansible refuses that llmops reads, or the other way round, and why that is right.
EXCEPTIONS: dict[str, str] = {}


def input_of(case: str) -> Path:
    return CORPUS / case / MANIFEST[case]["input"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ansible-corpus")


@pytest.fixture(scope="module")
def oracle(workdir: Path) -> dict[str, subprocess.CompletedProcess]:
    require_ansible()
    results = run_many([["-i", str(input_of(c).resolve()), "--list"] for c in CASES], workdir)
    return dict(zip(CASES, results, strict=False))


@pytest.fixture()
def as_ansible_runs(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """llmops' own ansible-inventory calls (plugin configs) see the same settings as the oracle's."""
    for key, value in isolated_env(workdir).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(workdir)


def test_corpus_is_ansibles_own_and_broad() -> None:
    assert len(CASES) >= 90
    kinds = {input_of(c).suffix for c in CASES}
    assert {".yml", ".ini", ".toml", ".json", ""} <= kinds
    assert all(MANIFEST[c]["from"].startswith(("ansible-core", "EXAMPLES")) for c in CASES)


@pytest.mark.parametrize("case", CASES)
def test_reads_as_ansible_does(case: str, oracle: dict, as_ansible_runs: None) -> None:
    theirs = oracle[case]
    try:
        ours: str | ConfigError = dumps(to_ansible_list(load_inventory(str(input_of(case)))))
    except ConfigError as exc:
        ours = exc
    if case in EXCEPTIONS:
        pytest.skip(EXCEPTIONS[case])
    if theirs.returncode != 0:
        assert isinstance(ours, ConfigError), f"Ansible refuses {case} but llmops reads it:\n{theirs.stderr}"
        assert str(ours.problems[0]).startswith(str(input_of(case).parent)), ours  # located in that input
        return
    assert not isinstance(ours, ConfigError), f"Ansible reads {case}, llmops refuses it: {ours}"
    assert ours == theirs.stdout.rstrip("\n")
