"""The bad-input corpus: every broken playbook, inventory, -e value, pattern or run directory in
tests/bad_inputs/ gives its expected FILE:LINE:COL message, exit code 2, no traceback, nothing is
started (no run directory), and is refused cheaply: the child's CPU time and peak RSS are
measured (tests/cli_forks.py: a forked child, or tests/bad_input_runner.py) against CPU_SECONDS and MAX_RSS_MB.

EXPECTED.json, per case (the key is the playbook unless `playbook` or `command` says otherwise):
  expect      the exact FILE:LINE:COL message (a substring of stderr)
  inventory   an -i inventory (the playbook then defaults to ../playbooks/llama.yml)
  playbook    the playbook, when the key names something else
  args        extra arguments (-e, --limit)
  command     the whole command instead of `apply PLAYBOOK` (report, compare, apply --resume)
  fifo        the key's file is made as a FIFO before the run (git cannot hold one)
  fifo_path   a FIFO to make for an argument
  run_dir     the --run-dir to pass (default: a fresh path that must stay absent)
  env         environment variables for the run (a bound raised to reach the one under test)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from cli_forks import measured as measured_command
from conftest import llmops

HERE = Path(__file__).resolve().parent / "bad_inputs"
CASES = json.loads((HERE / "EXPECTED.json").read_text())
LOCATED = re.compile(r"^[^\s:]+:\d+:\d+: ", re.M)

# CPU (user + system) rather than wall time: the machine is shared, a loaded CPU stretches wall
# time but not the work done. Memory: peak RSS of the llmops process.
CPU_SECONDS = 2.0
MAX_RSS_MB = 200




def measured(args: list[str], cwd: Path, tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    return measured_command(args, cwd, tmp_path / "cost.json", env=env)


def assert_cheap_refusal(result: dict[str, Any], label: str) -> None:
    err = result["stderr"]
    assert result["code"] == 2, f"{label}: exit {result['code']}\n{result['stdout'][-2000:]}\n{err[-2000:]}"
    assert "Traceback" not in err and "Traceback" not in result["stdout"], err[-3000:]
    assert LOCATED.search(err), err
    assert result["cpu_s"] < CPU_SECONDS, f"{label}: {result['cpu_s']:.2f} s of CPU"
    assert result["max_rss_mb"] < MAX_RSS_MB, f"{label}: {result['max_rss_mb']:.0f} MB peak RSS"


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 120


@pytest.fixture
def fifos():
    made: list[Path] = []

    def make(rel: str) -> None:
        path = HERE / rel
        if not path.exists():
            os.mkfifo(path)
            made.append(path)

    yield make
    for path in made:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("name", sorted(CASES), ids=sorted(CASES))
def test_bad_input(name: str, tmp_path: Path, fifos) -> None:
    case = CASES[name]
    if case.get("fifo"):
        fifos(case.get("inventory") or name)
    if case.get("fifo_path"):
        fifos(case["fifo_path"])
    run_dir = tmp_path / "run"
    if case.get("command"):
        args = list(case["command"])
    else:
        playbook = case.get("playbook") or ("../playbooks/llama.yml" if case.get("inventory") else name)
        args = ["apply", playbook] + (["-i", case["inventory"]] if case.get("inventory") else [])
        args += list(case.get("args", [])) + ["--run-dir", case.get("run_dir") or str(run_dir)]
    result = measured(args, HERE, tmp_path, env=case.get("env"))
    assert_cheap_refusal(result, name)
    assert case["expect"] in result["stderr"], result["stderr"]
    assert "nothing was started" in result["stderr"]
    assert not run_dir.exists()


def test_huge_file(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_text("- hosts: all\n  vars:\n" + "".join(f"    v{i}: {'x' * 100}\n" for i in range(45000)))
    proc = llmops("check", str(big), timeout=120)
    assert proc.returncode == 2
    assert f"{big}:1:1: file is" in proc.stderr and "too large" in proc.stderr


def test_bound_is_raised_by_its_variable(tmp_path: Path) -> None:
    """Each bound names the variable that raises it, and that variable works."""
    inv = tmp_path / "hosts.ini"
    inv.write_text("[web]\nh[1:20]\n")
    result = measured(["check", "../playbooks/llama.yml", "-i", str(inv)], HERE, tmp_path,
                      env={"LLMOPS_MAX_RANGE_HOSTS": "10"})
    assert_cheap_refusal(result, "range bound")
    assert "expands to more than 10 hosts (LLMOPS_MAX_RANGE_HOSTS raises the bound)" in result["stderr"]
    ok = measured(["check", "../playbooks/llama.yml", "-i", str(inv)], HERE, tmp_path,
                  env={"LLMOPS_MAX_RANGE_HOSTS": "20"})
    assert ok["code"] == 0, ok["stderr"]


MERGED = """\
- hosts: all
  backends:
    - &base
      name: llama
      kind: llama.cpp
      model: /models/m.gguf
      port: 8080
      ctx_size: 2048
    - <<: *base
      name: llama2
      port: 8081
"""


def test_merge_keys_work_in_playbooks_and_inventories(tmp_path: Path) -> None:
    pb = tmp_path / "merged.yml"
    pb.write_text(MERGED)
    inv = tmp_path / "inv.yml"
    inv.write_text("hosts:\n  a: &a {connection: local, vars: {x: 1}}\n  b:\n    <<: *a\n    vars: {x: 2}\n")
    ansible = tmp_path / "ansible.yml"
    ansible.write_text("all:\n  vars: &v {x: 1}\n  children:\n    g:\n      hosts: {localhost: {ansible_connection: local}}\n"
                       "      vars:\n        <<: *v\n        y: 2\n")
    for args in (["check", str(pb)], ["check", str(pb), "-i", str(inv)], ["check", str(pb), "-i", str(ansible)]):
        proc = llmops(*args, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "llama2" in proc.stdout and "--ctx-size 2048" in proc.stdout and "--port 8081" in proc.stdout
