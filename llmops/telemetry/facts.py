"""Turn the raw outputs gathered on a host into facts a report can show (pure functions).

Inputs: the agent's `facts` document (OS, kernel and cmdline, CPU, RAM, tools found, DRM cards
from sysfs) and `raw`, the output of a few tool commands run with timeouts (amd-smi version /
metric, rocm-smi, nvidia-smi, the ROCm version file, nvcc, each backend's version command).
"""

from __future__ import annotations

import re
from typing import Any

from llmops.telemetry.select import AMD_VENDOR, NVIDIA_VENDOR

VENDORS = {AMD_VENDOR: "AMD", NVIDIA_VENDOR: "NVIDIA", "0x8086": "Intel"}

DPKG_PACKAGES = ("mesa-vulkan-drivers", "libgl1-mesa-dri", "libegl-mesa0", "firmware-amd-graphics", "linux-firmware")
RPM_PACKAGES = ("mesa-vulkan-drivers", "mesa-dri-drivers", "linux-firmware", "amd-gpu-firmware")
PACMAN_PACKAGES = ("vulkan-radeon", "mesa", "linux-firmware")
MESA_PACKAGES = ("mesa-vulkan-drivers", "vulkan-radeon", "libgl1-mesa-dri", "mesa-dri-drivers", "mesa", "libegl-mesa0")
FIRMWARE_PACKAGES = ("firmware-amd-graphics", "amd-gpu-firmware", "linux-firmware")

# name -> shell command; each runs only when its tool exists, under a timeout.
TOOL_COMMANDS = {
    "amd-smi-version": ("amd-smi", "amd-smi version"),
    "amd-smi-metric": ("amd-smi", "amd-smi metric -m --json"),
    "rocm-smi-meminfo": ("rocm-smi", "rocm-smi --showmeminfo vram gtt --json"),
    "nvidia-smi-gpus": ("nvidia-smi", "nvidia-smi --query-gpu=index,name,uuid,memory.used,memory.total "
                                      "--format=csv,noheader,nounits"),
    "nvidia-smi-driver": ("nvidia-smi", "nvidia-smi --query-gpu=driver_version,vbios_version --format=csv,noheader"),
    # The user-space graphics stack and firmware, as the package manager has them (Mesa's RADV
    # and radeonsi decide Vulkan speed; the firmware package the GPU's microcode).
    "packages": (None, "dpkg-query -W -f '${Package} ${Version}\\n' " + " ".join(DPKG_PACKAGES) + " 2>/dev/null; "
                       "rpm -q --qf '%{NAME} %{VERSION}\\n' " + " ".join(RPM_PACKAGES) + " 2>/dev/null "
                       "| grep -v 'not installed'; pacman -Q " + " ".join(PACMAN_PACKAGES) + " 2>/dev/null; true"),
    "nvidia-smi-banner": ("nvidia-smi", "nvidia-smi"),
    "nvcc": ("nvcc", "nvcc --version"),
    "rocm-version": (None, "cat /opt/rocm/.info/version 2>/dev/null || cat /opt/rocm/.info/version-dev 2>/dev/null"),
}


def summarize(facts: dict[str, Any], raw: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Add `gpus`, `versions` and `gpu_tools` to the agent's facts."""
    out = dict(facts)
    out["gpus"] = gpus(facts, raw)
    out["versions"] = versions(raw)
    out["gpu_tools"] = {name: bool(path) for name, path in (facts.get("tools") or {}).items()
                        if name in ("amd-smi", "rocm-smi", "nvidia-smi")}
    out["raw"] = {k: {"rc": v.get("rc"), "timed_out": v.get("timed_out"), "out": (v.get("out") or "")[:20000]}
                  for k, v in raw.items()}
    cmdline = (facts.get("kernel") or {}).get("cmdline") or ""
    out["kernel"] = dict(facts.get("kernel") or {})
    out["kernel"]["gpu_params"] = {m.group(1): m.group(2) for m in re.finditer(
        r"\b((?:amdgpu|amdttm|ttm)\.\w+|amd_iommu|iommu)=(\S+)", cmdline)}
    return out


def _ok(raw: dict[str, dict[str, Any]], key: str) -> str | None:
    r = raw.get(key)
    if not r or r.get("timed_out") or r.get("rc") not in (0,):
        return None
    return r.get("out") or None


def gpus(facts: dict[str, Any], raw: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per GPU: vendor, model, VRAM and GTT totals (bytes), from the best source at hand."""
    found: list[dict[str, Any]] = []
    text = _ok(raw, "nvidia-smi-gpus")
    if text:
        from llmops.telemetry import nvidiasmi

        for d in nvidiasmi.parse(text).devices:
            found.append({"vendor": "NVIDIA", "index": d.get("index"), "model": d.get("name"),
                          "vram_total_bytes": d.get("vram_total_bytes"), "gtt_total_bytes": None,
                          "source": "nvidia-smi"})
    text = _ok(raw, "amd-smi-metric")
    amd_from_tool = []
    if text:
        from llmops.telemetry import amdsmi

        try:
            amd_from_tool = amdsmi.parse(text).devices
        except Exception:  # noqa: BLE001 - facts stay useful without this source
            amd_from_tool = []
    cards = [c for c in facts.get("gpus_sysfs") or [] if c.get("vendor_id") != NVIDIA_VENDOR or not found]
    amd_cards = [c for c in cards if c.get("vendor_id") == AMD_VENDOR]
    for i, card in enumerate(amd_cards):
        tool = amd_from_tool[i] if i < len(amd_from_tool) else {}
        found.append({"vendor": "AMD", "index": i, "model": tool.get("name") or card.get("device_id"),
                      "pci": card.get("pci"),
                      "vram_total_bytes": card.get("mem_info_vram_total") or tool.get("vram_total_bytes"),
                      "gtt_total_bytes": card.get("mem_info_gtt_total") or tool.get("gtt_total_bytes"),
                      "vbios_version": card.get("vbios_version"), "firmware": card.get("firmware"),
                      "source": "sysfs" + ("+amd-smi" if tool else "")})
    if not amd_cards and amd_from_tool:
        for d in amd_from_tool:
            found.append({"vendor": "AMD", "index": d.get("index"), "model": d.get("name"),
                          "vram_total_bytes": d.get("vram_total_bytes"), "gtt_total_bytes": d.get("gtt_total_bytes"),
                          "source": "amd-smi"})
    for card in cards:
        vendor = VENDORS.get(card.get("vendor_id") or "", card.get("vendor_id"))
        if vendor in ("AMD", "NVIDIA"):
            continue
        found.append({"vendor": vendor, "model": card.get("device_id"), "pci": card.get("pci"),
                      "vram_total_bytes": card.get("mem_info_vram_total"), "gtt_total_bytes": None,
                      "source": "sysfs"})
    return found


def versions(raw: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    text = _ok(raw, "rocm-version")
    if text:
        out["rocm"] = text.strip().splitlines()[0]
    text = _ok(raw, "amd-smi-version")
    if text:
        for key, rx in (("amd_smi", r"AMDSMI Tool:\s*([^\s|]+)"), ("amdgpu_driver", r"amdgpu version:\s*([^|]+)"),
                        ("rocm_by_amd_smi", r"ROCm version:\s*([^\s|]+)")):
            m = re.search(rx, text)
            if m:
                out[key] = m.group(1).strip()
        out.setdefault("rocm", out.get("rocm_by_amd_smi"))
    text = _ok(raw, "nvidia-smi-driver")
    if text:
        first = [f.strip() for f in text.strip().splitlines()[0].split(",")]
        out["nvidia_driver"] = first[0]
        if len(first) > 1 and first[1]:
            out["nvidia_vbios"] = first[1]
    out.update(package_versions(_ok(raw, "packages")))
    text = _ok(raw, "nvidia-smi-banner")
    if text:
        m = re.search(r"CUDA Version:\s*([\d.]+)", text)
        if m:
            out["cuda_driver_api"] = m.group(1)
    text = _ok(raw, "nvcc")
    if text:
        m = re.search(r"release ([\d.]+)", text)
        if m:
            out["cuda_toolkit"] = m.group(1)
    return {k: v for k, v in out.items() if v}


def package_versions(text: str | None) -> dict[str, Any]:
    """Mesa and GPU firmware versions from `dpkg-query`/`rpm -q`/`pacman -Q` lines ("NAME VERSION");
    a package listed without a version is not installed (dpkg lists removed ones so)."""
    installed: dict[str, str] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] not in installed:
            installed[parts[0]] = parts[1]
    out: dict[str, Any] = {}
    mesa = next(((n, installed[n]) for n in MESA_PACKAGES if n in installed), None)
    if mesa:
        out["mesa"] = mesa[1]
        out["mesa_package"] = mesa[0]
    firmware = next(((n, installed[n]) for n in FIRMWARE_PACKAGES if n in installed), None)
    if firmware:
        out["gpu_firmware_package"] = f"{firmware[0]} {firmware[1]}"
    return out
