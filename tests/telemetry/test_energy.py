"""Energy math on synthetic counters and power series (exact expected values), and the sysfs
reader end to end on a fake /sys tree (RAPL zones, subzones, hwmon), docs/metrics.md "Energy"."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from llmops.plugins.api import Telemetry
from llmops.telemetry import energy, power_sysfs
from llmops.telemetry.gpumem import GpuSample


def test_trapezoid_integration() -> None:
    assert energy.integrate([(0.0, 10.0), (1.0, 20.0), (3.0, 20.0)]) == [(0.0, 0.0), (1.0, 15.0), (3.0, 55.0)]


def test_counter_wraps_at_its_range_and_a_reset_counts_nothing() -> None:
    # 1000 J range: 999 J -> 1 J is a 2 J step across the wrap
    assert energy.unwrap([(0.0, 998_000_000), (1.0, 999_000_000), (2.0, 1_000_000)], 1_000_000_000) == \
        [(0.0, 0.0), (1.0, 1.0), (2.0, 3.0)]
    # without a known range a drop is a reset (driver reload): no step, then counting goes on
    assert energy.unwrap([(0.0, 5_000_000), (1.0, 1_000_000), (2.0, 4_000_000)], None) == \
        [(0.0, 0.0), (1.0, 0.0), (2.0, 3.0)]


def test_window_interpolates_at_its_edges() -> None:
    curve = [(0.0, 0.0), (2.0, 20.0), (4.0, 60.0)]  # 10 W, then 20 W
    got = energy.window(curve, 1.0, 3.0)
    assert got == {"joules": 30.0, "mean_watts": 15.0, "seconds": 2.0, "samples": 1}
    # a window inside one interval (a level shorter than the sampling interval)
    assert energy.window(curve, 2.5, 3.0)["joules"] == 10.0
    # part of the window is not covered: the covered mean stands for all of it, and is said
    got = energy.window(curve, 3.0, 6.0)
    assert got["mean_watts"] == 20.0 and got["joules"] == 60.0 and got["covered_s"] == 1.0
    assert energy.window(curve, 5.0, 6.0) is None and energy.window([(0.0, 0.0)], 0.0, 1.0) is None


def sample(t: float, collector: str, *devices: dict) -> GpuSample:
    return GpuSample(t, collector, Telemetry(tool=collector, devices=list(devices)))


def rapl(index: int, node: str, name: str, uj: int, *, top: bool = True, max_uj: int | None = None) -> dict:
    d = {"index": index, "name": name, "source": "rapl", "path": f"class/powercap/{node}", "top": top, "energy_uj": uj}
    if max_uj:
        d["max_energy_range_uj"] = max_uj
    return d


def test_levels_get_joules_idle_subtracted_and_tokens_per_joule() -> None:
    """Two packages counting 10 W and 30 W from t=0 to 20 (40 W); package-0 wraps at t=12. The
    core subzone and psys are not added (they are inside / around the packages)."""
    samples = []
    for t in range(0, 21, 2):
        p0 = (10_000_000 * t) % 100_000_000  # 10 W, range 100 J: wraps between t=8 and t=10
        samples.append(sample(float(t), "sysfs-power",
                              rapl(0, "intel-rapl:0", "package-0", p0, max_uj=100_000_000),
                              rapl(1, "intel-rapl:0:0", "core", 999 * t, top=False),
                              rapl(2, "intel-rapl:1", "package-1", 30_000_000 * t),
                              rapl(3, "intel-rapl:2", "psys", 77_000_000 * t)))
    # the level ran 4..14; its measured requests took the last 8 s of it (warm-up first): 6..14,
    # sampled at 6, 8, 10, 12, 14
    level = {"t_start": 4.0, "t_end": 14.0, "total_s": 8.0, "completion_tokens": 640}
    summary = energy.mark_levels([level], samples, (1.0, 3.0))
    assert summary["source"] == "rapl" and summary["kind"] == "energy counter"
    assert summary["devices"] == ["intel-rapl:0 (package-0)", "intel-rapl:1 (package-1)"]
    assert summary["idle_watts"] == 40.0 and summary["idle_s"] == 2.0
    e = level["energy"]
    assert e == {"source": "rapl", "joules": 320.0, "mean_watts": 40.0, "idle_watts": 40.0,
                 "joules_above_idle": 0.0, "tokens_per_joule": 2.0, "seconds": 8.0, "samples": 5}


def test_sampled_power_per_repetition_and_summed_for_the_level() -> None:
    # two GPUs: 100 W each until t=10, then 200 W each
    samples = [sample(float(t), "nvidia-smi-power",
                      {"index": 0, "name": "H200", "power_watts": 100.0 if t <= 10 else 200.0},
                      {"index": 1, "name": "H200", "power_watts": 100.0 if t <= 10 else 200.0})
               for t in range(0, 31)]
    level = {"t_start": 12.0, "t_end": 28.0, "total_s": 4.0, "completion_tokens": 3000,
             "repeats": [{"t_start": 12.0, "t_end": 16.0, "total_s": 4.0, "completion_tokens": 1000},
                         {"t_start": 20.0, "t_end": 28.0, "total_s": 8.0, "completion_tokens": 2000}]}
    summary = energy.mark_levels([level], samples, (2.0, 8.0))
    assert summary["source"] == "nvidia-smi" and summary["idle_watts"] == 200.0
    assert level["repeats"][0]["energy"]["joules"] == 1600.0
    assert level["repeats"][1]["energy"]["joules"] == 3200.0
    e = level["energy"]
    assert (e["joules"], e["seconds"], e["mean_watts"]) == (4800.0, 12.0, 400.0)
    assert e["joules_above_idle"] == 4800.0 - 200.0 * 12.0
    assert e["tokens_per_joule"] == 3000 / 4800.0


def test_gpu_tool_first_and_every_source_listed() -> None:
    samples = [sample(float(t), "amd-smi-power", {"index": 0, "name": None, "power_watts": 50.0}) for t in range(5)]
    samples += [sample(float(t), "sysfs-power", {"index": 0, "name": "amdgpu", "source": "hwmon",
                                                 "path": "class/hwmon/hwmon3", "power_watts": 48.0}) for t in range(5)]
    level = {"t_start": 1.0, "t_end": 3.0, "total_s": 2.0, "completion_tokens": 10}
    summary = energy.mark_levels([level], samples, None)
    assert summary["source"] == "amd-smi" and set(summary["by_source"]) == {"amd-smi", "hwmon"}
    assert summary["idle_watts"] is None and "idle_power_s" in summary["idle_note"]
    assert level["energy"]["joules"] == 100.0 and level["energy"]["joules_above_idle"] is None
    chosen = energy.mark_levels([level], samples, None, wanted="hwmon")
    assert chosen["source"] == "hwmon" and level["energy"]["joules"] == 96.0


def test_hwmon_counters_win_and_the_power_left_out_is_named() -> None:
    samples = [sample(float(t), "sysfs-power",
                      {"index": 0, "name": "amd_energy", "source": "hwmon", "path": "class/hwmon/hwmon1",
                       "energy_uj": 25_000_000 * t},
                      {"index": 1, "name": "amdgpu", "source": "hwmon", "path": "class/hwmon/hwmon2",
                       "power_watts": 9.0}) for t in range(4)]
    level = {"t_start": 0.0, "t_end": 2.0, "total_s": 2.0, "completion_tokens": 5}
    summary = energy.mark_levels([level], samples, None)
    assert summary["devices"] == ["hwmon1 (amd_energy)"] and level["energy"]["mean_watts"] == 25.0
    assert summary["notes"] == ["hwmon: sampled power of hwmon2 (amdgpu) not added "
                                "(the energy counters of hwmon1 (amd_energy) are used)"]


def test_no_source_says_why() -> None:
    level = {"t_start": 1.0, "t_end": 3.0, "total_s": 2.0, "completion_tokens": 10}
    empty = [GpuSample(float(t), "sysfs-power", Telemetry(tool="sysfs-power")) for t in range(5)]
    assert energy.mark_levels([level], empty, (0.0, 1.0)) == {"source": None, "reason": energy.NO_SOURCE}
    assert level["energy"] == {"source": None, "reason": energy.NO_SOURCE}
    denied = [sample(float(t), "sysfs-power", {"index": 0, "name": "package-0", "source": "rapl", "top": True,
                                              "path": "class/powercap/intel-rapl:0", "denied": ["energy_uj"]})
              for t in range(3)]
    reason = energy.mark_levels([level], denied, None)["reason"]
    assert reason.startswith("permission denied: /sys/class/powercap/intel-rapl:0/energy_uj")
    na = [sample(float(t), "nvidia-smi-power", {"index": 0, "name": "GPU", "power_watts": None}) for t in range(3)]
    assert "nvidia-smi reports no power reading" in energy.mark_levels([level], na, None)["reason"]
    off = energy.mark_levels([level], [], None, enabled=False)
    assert off["source"] is None and "telemetry.power: false" in off["reason"]


# --- the sysfs reader on a fake tree ----------------------------------------------------------------

def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def fake_sys(root: Path, package_uj: int) -> None:
    """Laid out like the kernel's: class/* entries are links into devices/."""
    devices = root / "devices" / "virtual" / "powercap" / "intel-rapl"
    for node, name, uj in (("intel-rapl:0", "package-0", package_uj), ("intel-rapl:0/intel-rapl:0:0", "core", 1234)):
        write(devices / node / "name", name)
        write(devices / node / "energy_uj", str(uj))
        write(devices / node / "max_energy_range_uj", "262143328850")
    cls = root / "class" / "powercap"
    cls.mkdir(parents=True, exist_ok=True)
    for node in ("intel-rapl:0", "intel-rapl:0/intel-rapl:0:0"):
        link = cls / node.rsplit("/", 1)[-1]
        if not link.exists():
            link.symlink_to(devices / node)
    hw = root / "class" / "hwmon"
    write(hw / "hwmon0" / "name", "amdgpu")
    write(hw / "hwmon0" / "power1_average", "15000000")  # 15 W in microwatts
    write(hw / "hwmon1" / "name", "nvme")
    write(hw / "hwmon1" / "temp1_input", "41850")  # no power file: not listed


def run(root: Path) -> str:
    return subprocess.run(["/bin/sh", "-c", power_sysfs.command(str(root))], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def test_fake_sysfs_tree_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "my sys"  # a space: the root is shell-quoted
    fake_sys(root, 262_143_000_000)
    first = power_sysfs.parse(run(root))
    assert [(d["path"], d["name"], d.get("energy_uj"), d.get("power_watts"), d.get("top")) for d in first.devices] == [
        ("class/powercap/intel-rapl:0", "package-0", 262_143_000_000, None, True),
        ("class/powercap/intel-rapl:0:0", "core", 1234, None, False),
        ("class/hwmon/hwmon0", "amdgpu", None, 15.0, None)]
    assert first.devices[0]["max_energy_range_uj"] == 262143328850 and not first.warnings
    # two seconds later the package counter has wrapped: 328850 uJ to the top, then 671150 more
    fake_sys(root, 671_150)
    second = power_sysfs.parse(run(root))
    samples = [GpuSample(10.0, "sysfs-power", first), GpuSample(12.0, "sysfs-power", second)]
    sources, notes = energy.curves_by_source(samples)
    assert not notes
    assert energy.window(sources["rapl"]["curve"], 10.0, 12.0)["joules"] == 1.0
    assert energy.window(sources["hwmon"]["curve"], 10.0, 12.0)["mean_watts"] == 15.0


def test_an_empty_tree_prints_nothing(tmp_path: Path) -> None:
    assert run(tmp_path) == "" and power_sysfs.parse("").devices == []


def test_a_root_only_counter_is_reported_denied() -> None:
    """energy_uj mode 0400 root, as the kernel has it since 5.10, read by an ordinary user (this
    test drops to nobody with setpriv when it runs as root, as CI does)."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: no ordinary user to read as")
    root = Path(tempfile.mkdtemp(prefix="llmops-fake-sys-"))
    try:
        fake_sys(root, 5)
        for path in [root, *root.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
            elif path.is_file():
                path.chmod(0o444)
        counter = root / "devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj"
        counter.chmod(0o400)
        argv = ["/bin/sh", "-c", power_sysfs.command(str(root))]
        if os.geteuid() == 0:
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
        package = power_sysfs.parse(out).devices[0]
        assert package["path"] == "class/powercap/intel-rapl:0"
        assert package["denied"] == ["energy_uj"] and "energy_uj" not in package
        assert package["max_energy_range_uj"] == 262143328850  # the rest of the zone still reads
        reason = energy.mark_levels([], [GpuSample(0.0, "sysfs-power", power_sysfs.parse(out))], None)
        assert reason["source"] == "hwmon"  # the fake hwmon still gives power
        assert "permission denied: /sys/class/powercap/intel-rapl:0/energy_uj" in reason["notes"][0]
    finally:
        shutil.rmtree(root)


def test_denied_and_unreadable_lines_parse() -> None:
    text = ("rapl=intel-rapl:0 name=package-0\nrapl=intel-rapl:0 energy_uj=denied\n"
            "rapl=intel-rapl:0 max_energy_range_uj=262143328850\n"
            "hwmon=hwmon2 name=k10temp\nhwmon=hwmon2 power1_input=unreadable\n")
    devices = power_sysfs.parse(text).devices
    assert devices[0]["denied"] == ["energy_uj"] and "energy_uj" not in devices[0]
    assert devices[1]["unreadable"] == ["power1_input"] and "power_watts" not in devices[1]


def test_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    """What this machine has, said in the test log: the CI VM had neither powercap nor hwmon."""
    found = power_sysfs.parse(run(Path("/sys"))).devices
    with capsys.disabled():
        print(f"\n/sys power files here: {[(d['path'], d.get('name')) for d in found] or 'none'}")
    for d in found:
        assert d["source"] in ("rapl", "hwmon")
