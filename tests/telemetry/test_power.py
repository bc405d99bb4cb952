"""Power parsers, golden-tested on real captures: each expected figure below was read by hand
from the capture named beside it (tests/fixtures/telemetry, and tests/fixtures/power for the
rocm-smi concise table, which the memory parsers refuse); every capture keeps its `.source`."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.plugins.registry import registry
from llmops.telemetry import power_gpu
from llmops.telemetry.select import choose

TESTS = Path(__file__).resolve().parent.parent
TELEMETRY = TESTS / "fixtures" / "telemetry"
POWER = TESTS / "fixtures" / "power"

# capture stem -> [(gpu index, power W, cap W or None)]
GOLDEN = {
    # amd-smi metric --json (6.1.x): "socket_power": {"value": 6, "unit": "W"}
    "amd-smi_metric_json__supermicro-fan-notes-rx6600-rocm61x": [(0, 6.0, None)],
    # amd-smi metric text: "SOCKET_POWER: 234 W"; an APU says N/A
    "amd-smi_metric_text__rocm-blog-amd-smi-overview-mi300x-truncated": [(0, 234.0, None)],
    "amd-smi_metric_text__ojitha-blog-radeon890m-rocm720-apu": [(0, None, None)],
    # amd-smi monitor: POWER "305 W" (6.4, with a group warning before it), "199 W" (6.2 -q)
    "amd-smi_monitor__amdsmi-issue130-mi300xvf-rocm640-groupwarning": [(0, 305.0, None)],
    "amd-smi_monitor_process__amdsmi-issue130-mi300xvf-rocm640": [(0, 293.0, None)],
    "amd-smi_monitor_q_process_table__amdsmi-changelog-620": [(0, 199.0, None)],
    "amd-smi_monitor_putm__ojitha-blog-radeon890m-rocm720": [(0, None, None)],
    # bare amd-smi (7.x): "734/750 W" ... per GPU; Strix Halo "N/A/0 W"
    "amd-smi_default_table_with_processes__amdsmi-changelog-700-8xmi300x": [
        (0, 734.0, 750.0), (1, 652.0, 750.0), (2, 376.0, 750.0), (3, 234.0, 750.0),
        (4, 219.0, 750.0), (5, 295.0, 750.0), (6, 367.0, 750.0), (7, 434.0, 750.0)],
    "amd-smi_default_table__rocm-issue-rx7900xtx-rocm711": [(0, 23.0, 327.0)],
    "amd-smi_default_table__rocm-issue-strixhalo-debian13-rocm702": [(0, None, None)],
    # MI250X: the second GCD of each package reports 0/0 W
    "amd-smi_default_table__amdsmi-issue184-mi250x-rocm711": [
        (0, 94.0, 560.0), (1, 0.0, None), (2, 93.0, 560.0), (3, 0.0, None),
        (4, 90.0, 560.0), (5, 0.0, None), (6, 91.0, 560.0), (7, 0.0, None)],
    # nvidia-smi --query-gpu CSV with units in the header, "power.draw [W]" = 28.16
    "nvidia-smi_query-gpu_csv_units__netdata-testdata-tesla-p100": [(0, 28.16, None)],
    # nvidia-smi -q -x: power_readings/power_draw (gpu_power_readings from driver 535)
    "nvidia-smi_q_x_xml__netdata-testdata-a100-sxm4-mig": [(0, 66.92, 400.0)],
    "nvidia-smi_q_x_xml__netdata-testdata-rtx-2080-win": [(0, 14.5, 275.0)],
    "nvidia-smi_q_x_xml__netdata-testdata-rtx-3060": [(0, 8.7, None)],
    "nvidia-smi_q_x_xml__netdata-testdata-rtx-4090-driver-535": [(0, 26.84, 450.0)],
    "nvidia-smi_q_x_xml__netdata-testdata-tesla-p100": [(0, 26.16, 250.0)],
    # rocm-smi concise table: Power (Avg) "6.0W", PwrCap "150.0W"
    "rocm-smi_default_concise__rocm_smi_lib-changelog-611": [(0, 6.0, 150.0), (1, 8.0, 213.0)],
}
PARSERS = {"amd-smi": power_gpu.parse_amdsmi, "rocm-smi": power_gpu.parse_rocmsmi,
           "nvidia-smi": power_gpu.parse_nvidiasmi}


def capture(stem: str) -> Path:
    path = TELEMETRY / f"{stem}.txt"
    return path if path.exists() else POWER / f"{stem}.txt"


@pytest.mark.parametrize("stem", sorted(GOLDEN))
def test_power_capture_matches_what_it_says(stem: str) -> None:
    path = capture(stem)
    assert path.with_suffix(".source").is_file(), "every capture keeps its .source"
    parsed = PARSERS[stem.split("_", 1)[0]](path.read_text(encoding="utf-8"))
    got = [(d["index"], d["power_watts"], d.get("power_cap_watts")) for d in parsed.devices]
    assert got == GOLDEN[stem]


def test_warnings_before_the_table_are_kept_not_read_as_data() -> None:
    parsed = power_gpu.parse_amdsmi(capture("amd-smi_monitor__amdsmi-issue130-mi300xvf-rocm640-groupwarning").read_text())
    assert parsed.warnings == ["WARNING: User is missing the following required groups: render, video. "
                               "Please add user to these groups."]


def test_our_own_nvidia_query_reads_back() -> None:
    """The collector's command prints a header (csv,nounits): the parser finds power.draw by name."""
    text = "index, name, power.draw [W], power.limit [W]\n0, NVIDIA H200, 75.31, 700.00\n1, NVIDIA H200, [N/A], 700.00\n"
    got = power_gpu.parse_nvidiasmi(text).devices
    assert [(d["index"], d["power_watts"], d["power_cap_watts"]) for d in got] == [(0, 75.31, 700.0), (1, None, 700.0)]
    assert power_gpu.NvidiaSmiPower().command() == \
        "nvidia-smi --query-gpu=index,name,power.draw,power.limit --format=csv,nounits"


@pytest.mark.parametrize(("value", "watts"), [(6, 6.0), ("234 W", 234.0), ("6.0W", 6.0), ({"value": 6, "unit": "W"}, 6.0),
                                              ("1500 mW", 1.5), ("N/A", None), ("[N/A]", None), ({"value": "N/A"}, None)])
def test_watts_spellings(value: object, watts: float | None) -> None:
    assert power_gpu.to_watts(value) == watts


def test_unrecognised_output_says_which_command_to_run() -> None:
    with pytest.raises(Exception, match="metric -p --json"):
        power_gpu.parse_amdsmi("hello")
    with pytest.raises(Exception, match="power.draw"):
        power_gpu.parse_nvidiasmi("index, memory.used [MiB]\n0, 10 MiB\n")


def test_power_collectors_are_registered_and_chosen_by_facts() -> None:
    available = registry().collectors()
    for name in ("amd-smi-power", "rocm-smi-power", "nvidia-smi-power", "sysfs-power"):
        assert available[name].measures == "power"
    names = [c.name for c in choose({"tools": {"nvidia-smi": "/usr/bin/nvidia-smi"}}, available)]
    assert names[-2:] == ["nvidia-smi-power", "sysfs-power"] and "nvidia-smi" in names
    amd = [c.name for c in choose({"tools": {"amd-smi": "/x", "rocm-smi": "/y"}}, available)]
    assert "amd-smi-power" in amd and "rocm-smi-power" not in amd
    assert [c.name for c in choose({}, available)] == ["sysfs-power"]  # nothing else on a bare host
    assert [c.name for c in choose({}, available, power=False)] == []
    # an explicit memory list still gets power; one that names a power collector is taken as is
    assert [c.name for c in choose({}, available, ["sysfs"])] == ["sysfs", "sysfs-power"]
    assert [c.name for c in choose({}, available, ["sysfs-power"])] == ["sysfs-power"]


def test_cli_parses_power_captures() -> None:
    from click.testing import CliRunner

    from llmops.cli import main

    out = CliRunner().invoke(main, ["telemetry", "parse", "--tool", "rocm-smi", "--power",
                                    str(POWER / "rocm-smi_default_concise__rocm_smi_lib-changelog-611.txt")])
    assert out.exit_code == 0, out.output
    assert '"power_watts": 8.0' in out.output and '"power_cap_watts": 213.0' in out.output
