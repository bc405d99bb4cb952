"""Mesa, GPU firmware and VBIOS versions in the facts (issue 16: every result says what ran it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from llmops.telemetry import facts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AGENT = Path(facts.__file__).resolve().parents[1] / "agent" / "hostagent.py"


def test_packages_captured_on_debian() -> None:
    text = (FIXTURES / "facts" / "packages__debian12-dev-vm.txt").read_text()
    # No Vulkan driver installed here: the GL driver package names the Mesa release.
    assert facts.package_versions(text) == {"mesa": "22.3.6-1+deb12u1", "mesa_package": "libgl1-mesa-dri"}


def test_vulkan_driver_wins_and_firmware_is_named() -> None:
    text = ("libgl1-mesa-dri 25.0.7-2\nmesa-vulkan-drivers 25.0.7-2\nfirmware-amd-graphics 20250410-2\n"
            "linux-firmware \n")  # dpkg lists a package it knows but has not installed without a version
    assert facts.package_versions(text) == {"mesa": "25.0.7-2", "mesa_package": "mesa-vulkan-drivers",
                                            "gpu_firmware_package": "firmware-amd-graphics 20250410-2"}
    assert facts.package_versions("vulkan-radeon 1:25.1.3-1\nlinux-firmware 20250508.788aadc8-2\n") == {
        "mesa": "1:25.1.3-1", "mesa_package": "vulkan-radeon",
        "gpu_firmware_package": "linux-firmware 20250508.788aadc8-2"}
    assert facts.package_versions("") == {}


def test_nvidia_driver_and_vbios() -> None:
    raw = {"nvidia-smi-driver": {"rc": 0, "out": "580.65.06, 94.06.19.00.51\n"}}
    out = facts.versions(raw)
    assert out["nvidia_driver"] == "580.65.06" and out["nvidia_vbios"] == "94.06.19.00.51"


def test_amdgpu_vbios_and_firmware_from_sysfs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("hostagent_for_test", AGENT)
    agent = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(agent)
    dev = tmp_path / "card1" / "device"
    (dev / "fw_version").mkdir(parents=True)
    (dev / "vendor").write_text("0x1002\n")
    (dev / "device").write_text("0x1586\n")
    (dev / "vbios_version").write_text("113-STRXLGEN-001\n")
    (dev / "fw_version" / "mec_fw_version").write_text("0x00000021\n")
    (dev / "fw_version" / "smc_fw_version").write_text("0x05560e00\n")
    (tmp_path / "card1-DP-1").mkdir()  # a connector, not a card
    cards = agent._drm_cards(str(tmp_path))
    assert len(cards) == 1
    assert cards[0]["vbios_version"] == "113-STRXLGEN-001"
    assert cards[0]["firmware"] == {"mec": "0x00000021", "smc": "0x05560e00"}
    gpus = facts.gpus({"gpus_sysfs": cards}, {})
    assert gpus[0]["vbios_version"] == "113-STRXLGEN-001" and gpus[0]["firmware"]["mec"] == "0x00000021"
