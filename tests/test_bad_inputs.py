"""The bad-input corpus: every broken playbook or inventory in tests/bad_inputs/ gives its expected
FILE:LINE:COL message, exit code 2, no traceback, and nothing is started (no run directory)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import llmops

HERE = Path(__file__).resolve().parent / "bad_inputs"
CASES = json.loads((HERE / "EXPECTED.json").read_text())
LOCATED = re.compile(r"^[^\s:]+:\d+:\d+: ", re.M)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES), ids=sorted(CASES))
def test_bad_input(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    if case["inventory"]:
        args = ["apply", "../playbooks/llama.yml", "-i", case["inventory"]]
    else:
        args = ["apply", name]
    run_dir = tmp_path / "run"
    proc = llmops(*args, "--run-dir", str(run_dir), cwd=HERE, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert LOCATED.search(proc.stderr), proc.stderr
    assert case["expect"] in proc.stderr, proc.stderr
    assert "nothing was started" in proc.stderr
    assert not run_dir.exists()


def test_huge_file(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_text("- hosts: all\n  vars:\n" + "".join(f"    v{i}: {'x' * 100}\n" for i in range(45000)))
    proc = llmops("check", str(big), timeout=120)
    assert proc.returncode == 2
    assert f"{big}:1:1: file is" in proc.stderr and "too large" in proc.stderr
