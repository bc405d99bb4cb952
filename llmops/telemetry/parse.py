"""One entry point for the telemetry parsers: parse_capture(tool, text) -> normalised JSON dict.

Each tool's parse() recognises the layout by itself (JSON, CSV, XML, tables, text; any version we
have samples of), so callers only say which tool printed the text.

Fixture captures (shared/fixtures/telemetry) deliberately not supported:

- amd-smi_version__ojitha-blog-radeon890m-rocm720: `amd-smi version` holds version strings,
  no device or process data.
- amd-smi_static_json_jq_vram__rocm-blog-amd-smi-overview-mi300x: the output of
  `amd-smi static --json | jq '.[0]["vram"]'`, a fragment re-shaped by jq with no GPU index;
  the full `amd-smi static --json` is supported.
- rocm-smi_default_concise__rocm_smi_lib-changelog-611: the concise table's only memory figure is
  VRAM% (no bytes, no GTT), and its columns change between versions; it raises a clear error that
  names the command to use instead.

Supported fixtures that carry no memory numbers, and so give devices with null sizes:
amd-smi_metric_ecc_json (ECC counters only), amd-smi_metric_text__...-truncated (cut before
MEM_USAGE), amd-smi_list_text (BDF/UUID only), amd-smi_monitor_putm (all N/A), and
rocm-smi_json_showmemuse (memory-controller busy %, not capacity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmops.errors import LlmopsError
from llmops.plugins.api import Telemetry
from llmops.telemetry import amdsmi, nvidiasmi, power_gpu, power_sysfs, rocmsmi, sysfs

TOOLS: dict[str, Callable[[str], Telemetry]] = {
    "amd-smi": amdsmi.parse,
    "rocm-smi": rocmsmi.parse,
    "nvidia-smi": nvidiasmi.parse,
    "sysfs": sysfs.parse,
}

# Power readings (llmops.telemetry.power_gpu / power_sysfs); "sysfs" here is the RAPL/hwmon pass.
POWER_TOOLS: dict[str, Callable[[str], Telemetry]] = {
    "amd-smi": power_gpu.parse_amdsmi,
    "rocm-smi": power_gpu.parse_rocmsmi,
    "nvidia-smi": power_gpu.parse_nvidiasmi,
    "sysfs": power_sysfs.parse,
}


def parse_capture(tool: str, text: str, *, power: bool = False) -> dict[str, Any]:
    """The normalised JSON dict of `text`, the output of `tool` (its power figures with `power`);
    LlmopsError if it cannot be read."""
    try:
        parse = (POWER_TOOLS if power else TOOLS)[tool]
    except KeyError:
        raise LlmopsError(f"unknown telemetry tool {tool!r} (known: {', '.join(sorted(TOOLS))})") from None
    return parse(text).to_json()
