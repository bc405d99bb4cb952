"""`llmops apply` on the emulator finds an `energy` block in every level: exact figures from a
fake sysfs tree (constant hwmon power, a still RAPL counter) given through the host variable
llmops_sysfs_root, and the plain "no power source" reason where the tree has no power files
(as on the CI VM's own /sys: no /sys/class/powercap, no /sys/class/hwmon)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml_helpers
from click.testing import CliRunner
from conftest import read_results
from power_helpers import assert_constant_hwmon, fake_tree
from sshd import free_port

from llmops.cli import main
from llmops.telemetry.energy import NO_SOURCE


def apply(tmp_path: Path, sysfs_root: Path, **extra: object) -> dict:
    inventory = yaml_helpers.dump({"hosts": {"localhost": {"connection": "local",
                                                           "vars": {"llmops_sysfs_root": str(sysfs_root)}}}},
                                  tmp_path / "inv.yml")
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["apply", "--reports", "md", "tests/playbooks/energy.yml", "-i", str(inventory), "--run-dir",
                                       str(run_dir), "-e", json.dumps({"port": free_port(), "emu_python": sys.executable,
                                                                       **extra})])
    assert result.exit_code == 0, result.output
    (cell,) = read_results(run_dir)["cells"]
    return cell


def test_energy_from_a_fake_sysfs_tree(tmp_path: Path) -> None:
    cell = apply(tmp_path, fake_tree(tmp_path / "sys"), power_source="hwmon")
    assert len(cell["levels"]) == 2
    assert_constant_hwmon(cell)


def test_the_counter_source_is_chosen_before_hwmon_by_default(tmp_path: Path) -> None:
    cell = apply(tmp_path, fake_tree(tmp_path / "sys"))
    assert cell["energy"]["source"] == "rapl" and cell["energy"]["idle_watts"] == 0.0
    assert [level["energy"]["joules"] for level in cell["levels"]] == [0.0, 0.0]
    assert all(level["energy"]["tokens_per_joule"] is None for level in cell["levels"])  # no joules to divide by


def test_no_power_source_is_said_plainly(tmp_path: Path) -> None:
    empty = tmp_path / "sys"
    empty.mkdir()
    cell = apply(tmp_path, empty)
    assert cell["energy"] == {"source": None, "reason": NO_SOURCE}
    assert [level["energy"] for level in cell["levels"]] == [{"source": None, "reason": NO_SOURCE}] * 2
