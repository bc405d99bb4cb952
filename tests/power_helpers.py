"""Fake sysfs power trees and what this host's own power sources should give, for the energy
tests (tests/test_energy_apply.py on the emulator, tests/test_apply_llama.py on llama-server)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from llmops.telemetry import power_sysfs
from llmops.telemetry.energy import NO_SOURCE

HWMON_WATTS = 15.0


def fake_tree(root: Path, *, rapl: bool = True) -> Path:
    """hwmon0 (amdgpu) at a constant 15 W; a RAPL package whose counter never moves (0 W)."""
    hw = root / "class" / "hwmon" / "hwmon0"
    hw.mkdir(parents=True)
    (hw / "name").write_text("amdgpu\n")
    (hw / "power1_input").write_text(f"{int(HWMON_WATTS * 1e6)}\n")
    if not rapl:
        return root
    zone = root / "class" / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text("123456789\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    return root


def assert_constant_hwmon(cell: dict[str, Any]) -> None:
    """Every level of a cell measured on fake_tree() with power_source hwmon: exactly 15 W."""
    summary = cell["energy"]
    assert summary["source"] == "hwmon" and summary["kind"] == "sampled power", summary
    assert abs(summary["idle_watts"] - HWMON_WATTS) < 1e-9 and summary["idle_s"] > 0
    if "by_source" in summary:
        assert summary["by_source"]["rapl"]["idle_watts"] == 0.0  # the still counter, listed beside
    for level in cell["levels"]:
        e = level["energy"]
        assert e["source"] == "hwmon"
        assert abs(e["mean_watts"] - HWMON_WATTS) < 1e-9
        assert abs(e["joules"] - HWMON_WATTS * e["seconds"]) < 1e-6
        assert abs(e["joules_above_idle"]) < 1e-6
        assert abs(e["tokens_per_joule"] - level["completion_tokens"] / e["joules"]) < 1e-9
        assert abs(e["seconds"] - level["total_s"]) < 1e-6


def host_has_power() -> bool:
    """Whether this host has any power source llmops reads (the CI VM has none)."""
    out = subprocess.run(["/bin/sh", "-c", power_sysfs.command("/sys")], capture_output=True, text=True,
                         timeout=30).stdout
    readable = [d for d in power_sysfs.parse(out).devices if d.get("energy_uj") is not None
                or d.get("power_watts") is not None or d.get("denied")]
    return bool(readable) or any(shutil.which(tool) for tool in ("amd-smi", "rocm-smi", "nvidia-smi"))


def assert_energy_as_this_host_can(cell: dict[str, Any]) -> None:
    """No source here: the plain reason, in the cell and every level. A source: figures or a reason."""
    if not host_has_power():
        assert cell["energy"] == {"source": None, "reason": NO_SOURCE}
        assert all(level["energy"] == {"source": None, "reason": NO_SOURCE} for level in cell["levels"])
        return
    for level in cell["levels"]:
        e = level["energy"]
        assert e.get("joules") is not None or e.get("reason"), e
