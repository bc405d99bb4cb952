"""The run directory's lock: held while a run writes it, let go when the run ends, also when one
process applies twice (a Python caller, or `--resume` in the same interpreter)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sshd import free_port

from llmops.cli import main
from llmops.errors import LlmopsError
from llmops.record.rundir import RunDir


def test_a_held_lock_refuses_a_second_run_and_names_the_owner(tmp_path: Path) -> None:
    first = RunDir(tmp_path / "run", "run")
    first.lock()
    with pytest.raises(LlmopsError) as refused:
        RunDir(tmp_path / "run", "run").lock()
    assert f"pid {os.getpid()} on {socket.gethostname()}" in str(refused.value)
    first.unlock()
    again = RunDir(tmp_path / "run", "run")
    again.lock()  # let go: the next run may have the folder
    again.unlock()


def test_apply_twice_in_one_process_into_the_same_run_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["apply", "--reports", "md", "tests/playbooks/faults.yml", "-t", "emulator", "--run-dir", str(run_dir),
            "-e", f"port={free_port()}", "-e", f"emu_python={sys.executable}", "-e", '{"levels": [1], "max_tokens": 4}']
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert (run_dir / "report.md").exists() and not (run_dir / "report.html").exists()  # --reports md only
    second = CliRunner().invoke(main, ["apply", "--reports", "none", "--resume", str(run_dir)])
    assert second.exit_code == 0, second.output
    assert "in use by another llmops run" not in second.output


def test_reports_name_installed_formats_and_are_checked_before_anything_starts(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    refused = CliRunner().invoke(main, ["apply", "tests/playbooks/faults.yml", "-t", "emulator", "--run-dir", str(run_dir),
                                        "--reports", "md,bogus"])
    assert refused.exit_code == 2 and "'bogus': not an installed report format" in refused.output
    assert not run_dir.exists()
    args = ["apply", "tests/playbooks/faults.yml", "-t", "emulator", "--run-dir", str(run_dir), "--reports",
            "csv,requests-csv,json", "-e", f"port={free_port()}", "-e", f"emu_python={sys.executable}",
            "-e", '{"levels": [1], "max_tokens": 4}']
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in run_dir.glob("report*")) == ["report-requests-csv.csv", "report.csv", "report.json"]
    assert f"report: {run_dir / 'report.csv'} (and report-requests-csv.csv, report.json)" in done.output
