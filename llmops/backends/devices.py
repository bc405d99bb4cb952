"""`devices:` on a backend: which GPUs a server may use, in the form each program understands.

One playbook key, several renderings (docs/recipes/README.md has the table):

  llama.cpp   device names (ROCm0, Vulkan0, CUDA0; `--list-devices` prints them) -> `--device
              ROCm0,ROCm1`, which works for every ggml backend; GPU indices (0, 1) -> the
              visibility variable of the build's one GPU stack (HIP_VISIBLE_DEVICES,
              CUDA_VISIBLE_DEVICES, GGML_VK_VISIBLE_DEVICES), read from its cmake flags.
  vLLM        GPU indices -> HIP_VISIBLE_DEVICES (AMD) or CUDA_VISIBLE_DEVICES (NVIDIA), and
              `--tensor-parallel-size N` when N GPUs are given and no size is;
              docker + NVIDIA -> `--gpus '"device=0,1"'` (the inner quotes are part of the value:
              docker splits an unquoted `device=0,1` at the comma); podman + NVIDIA -> CDI
              `--device nvidia.com/gpu=0`; AMD containers -> render nodes
              (`--device /dev/dri/renderD128`) or indices through HIP_VISIBLE_DEVICES.

The names are checked here, once, so every renderer gets a clean list; what depends on the
rest of the entry (the build's GPU stack, the launcher) is checked by each backend's `check`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

# ggml's device names: a backend name and an index (ggml/include/ggml-cuda.h names ROCm, MUSA
# and CUDA devices, ggml-vulkan.h Vulkan ones; SYCL, CANN and others follow the same pattern).
DEVICE_NAME = re.compile(r"^[A-Za-z][A-Za-z]*[0-9]+$")
RENDER_NODE = re.compile(r"^/dev/dri/renderD[0-9]+$")
GPU_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Fa-f-]+$")

# Which cmake option builds which ggml backend, the device-name prefix it reports, and the
# variable that limits the GPUs its runtime sees (docs/build.md and docs/multi-gpu.md of the
# pinned tree; GGML_VK_VISIBLE_DEVICES is read in ggml-vulkan.cpp).
GGML_STACKS = {
    "GGML_HIP": ("ROCm", "HIP_VISIBLE_DEVICES"),
    "GGML_CUDA": ("CUDA", "CUDA_VISIBLE_DEVICES"),
    "GGML_VULKAN": ("Vulkan", "GGML_VK_VISIBLE_DEVICES"),
    "GGML_MUSA": ("MUSA", "MUSA_VISIBLE_DEVICES"),
}
DEVICE_PREFIXES = {prefix: option for option, (prefix, _) in GGML_STACKS.items()}


def normalise(value: Any) -> Any:
    """`devices:` as a list: `0`, `"0,1"`, `ROCm0` and `[0, 1]` all mean lists; YAML's 0 stays an int."""
    if isinstance(value, bool):
        return value  # refused by the type check that follows, with pydantic's own message
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        return [int(p) if p.isdigit() else p for p in parts]
    if isinstance(value, list):
        return [int(v) if isinstance(v, str) and v.strip().isdigit() else v for v in value]
    return value


def check_list(devices: list[int | str], *, names: bool, paths: bool = False, uuids: bool = False) -> list[int | str]:
    """Refuse empty lists, duplicates, negative indices, mixed kinds and words of no known form."""
    if not devices:
        raise ValueError("an empty device list selects nothing (expected GPU indices such as [0, 1]"
                         + (", device names such as [ROCm0], or none" if names else "") + ")")
    kinds = set()
    for item in devices:
        if isinstance(item, int):
            if item < 0:
                raise ValueError(f"{item} is not a GPU index (expected 0 or more)")
            kinds.add("index")
        elif names and item == "none":
            kinds.add("none")
        elif names and DEVICE_NAME.match(item):
            kinds.add("name")
        elif paths and RENDER_NODE.match(item):
            kinds.add("path")
        elif uuids and GPU_UUID.match(item):
            kinds.add("uuid")
        else:
            raise ValueError(f"{item!r} is not a device (expected {_forms(names, paths, uuids)})")
    if len(kinds) > 1 or ("none" in kinds and len(devices) > 1):
        raise ValueError(f"{', '.join(str(d) for d in devices)} mixes kinds of device "
                         f"(expected one kind: {_forms(names, paths, uuids)})")
    seen = set()
    for item in devices:
        if item in seen:
            raise ValueError(f"{item} is listed twice (expected each device once)")
        seen.add(item)
    return devices


def device_list(*, names: bool, paths: bool = False, uuids: bool = False) -> Any:
    """The type of a backend's `devices:` option: normalised to a list, then checked with the
    forms that backend takes (check_list). One definition for every backend's field."""
    return Annotated[list[int | str] | None, BeforeValidator(normalise),
                     AfterValidator(lambda v: None if v is None else check_list(v, names=names, paths=paths, uuids=uuids))]


def _forms(names: bool, paths: bool, uuids: bool) -> str:
    forms = ["GPU indices such as 0, 1"]
    if names:
        forms += ["device names as `llama-server --list-devices` prints them (ROCm0, Vulkan0, CUDA0)", "none"]
    if paths:
        forms.append("render nodes such as /dev/dri/renderD128")
    if uuids:
        forms.append("NVIDIA UUIDs such as GPU-3f1c...")
    return ", ".join(forms[:-1]) + " or " + forms[-1] if len(forms) > 1 else forms[0]


def joined(devices: list[int | str]) -> str:
    return ",".join(str(d) for d in devices)


def ggml_stacks(cmake_flags: list[str]) -> list[str]:
    """The ggml GPU backends a list of cmake flags turns on (`-DGGML_HIP=ON`), in GGML_STACKS order."""
    on = set()
    for flag in cmake_flags:
        name, _, value = flag.removeprefix("-D").partition("=")
        name = name.split(":", 1)[0]
        if name in GGML_STACKS and value.strip().upper() in ("ON", "1", "TRUE", "YES"):
            on.add(name)
    return [name for name in GGML_STACKS if name in on]
