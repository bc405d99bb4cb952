"""Build options for real GPU boxes: CUDA architectures, the HIP build's environment, and cmake
flags the pinned llama.cpp tree ignores (refused rather than silently dropped)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from conftest import llmops

from llmops.load.inventory import default_inventory
from llmops.load.playbook import load_playbook
from llmops.plan.planner import make_plan
from llmops.plugins.registry import registry


def playbook(tmp_path: Path, install: str) -> Path:
    path = tmp_path / "pb.yml"
    path.write_text("- hosts: all\n  backends:\n    - name: l\n      kind: llama.cpp\n      model: /m.gguf\n"
                    "      port: 18000\n      install:\n" + textwrap.indent(textwrap.dedent(install), " " * 8))
    return path


def build_step(tmp_path: Path, install: str):
    plan = make_plan(load_playbook(str(playbook(tmp_path, install))), default_inventory(), registry().backends())
    (step,) = [s for s in plan.cells[0].provision if s.id.startswith("llama.cpp:")]
    return step, plan.cells[0].command.split()[0]


def test_cuda_architectures_become_a_cmake_flag(tmp_path: Path) -> None:
    step, _ = build_step(tmp_path, "cmake_flags: [-DGGML_CUDA=ON]\ncuda_architectures: [89, 120]\n")
    assert "-DGGML_CUDA=ON '-DCMAKE_CUDA_ARCHITECTURES=89;120'" in step.apply
    step, _ = build_step(tmp_path, "cmake_flags: [-DGGML_CUDA=ON]\ncuda_architectures: 89\n")
    assert "-DCMAKE_CUDA_ARCHITECTURES=89" in step.apply


def test_build_env_is_exported_quoted_and_part_of_the_build_identity(tmp_path: Path) -> None:
    plain, plain_bin = build_step(tmp_path, "cmake_flags: [-DGGML_HIP=ON, -DAMDGPU_TARGETS=gfx1151]\n")
    step, binary = build_step(tmp_path, """\
        cmake_flags: [-DGGML_HIP=ON, -DAMDGPU_TARGETS=gfx1151]
        env:
          HIPCXX: /opt/rocm/llvm/bin/clang
          ROCM_PATH: /opt/rocm 7
        """)
    assert "export HIPCXX=/opt/rocm/llvm/bin/clang" in step.apply
    assert "export ROCM_PATH='/opt/rocm 7'" in step.apply
    assert step.apply.index("export HIPCXX") < step.apply.index("cmake -S")
    assert binary != plain_bin and "export" not in plain.apply
    # No env: the cache folder of existing builds is unchanged (the quickstart's golden holds it).
    assert "/llama.cpp/11434.0.0-" in plain_bin


def test_rocwmma_flag_the_pinned_tree_ignores_is_refused(tmp_path: Path) -> None:
    path = playbook(tmp_path, "cmake_flags: [-DGGML_HIP=ON, -DGGML_HIP_ROCWMMA_FATTN=ON]\n")
    proc = llmops("check", str(path), timeout=60)
    assert proc.returncode == 2, proc.stdout
    assert f"{path}:8:22: install.cmake_flags: -DGGML_HIP_ROCWMMA_FATTN=ON does nothing" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_build_env_name_is_refused(tmp_path: Path) -> None:
    proc = llmops("check", str(playbook(tmp_path, "env: {'A B': x}\n")), timeout=60)
    assert proc.returncode == 2 and "is not an environment variable name" in proc.stderr, proc.stderr


def vllm_playbook(tmp_path: Path, options: str) -> Path:
    path = tmp_path / "v.yml"
    path.write_text("- hosts: all\n  backends:\n    - name: v\n      kind: vllm\n      model: /m\n"
                    "      port: 18001\n" + textwrap.indent(textwrap.dedent(options), " " * 6))
    return path


def test_reasoning_parser_renders_for_vllm(tmp_path: Path) -> None:
    path = vllm_playbook(tmp_path, "launcher: module\nreasoning_parser: qwen3\n")
    plan = make_plan(load_playbook(str(path)), default_inventory(), registry().backends())
    words = plan.cells[0].command.split()
    assert words[words.index("--reasoning-parser") + 1] == "qwen3"


def test_podman_group_add_beside_keep_groups_is_refused(tmp_path: Path) -> None:
    path = vllm_playbook(tmp_path, """\
        launcher: podman
        image: docker.io/rocm/vllm:latest
        gpus: amd
        container_args: [--group-add, render]
        """)
    proc = llmops("check", str(path), timeout=60)
    assert proc.returncode == 2, proc.stdout
    assert f"{path}:10:23: vllm backend.container_args: --group-add render beside" in proc.stderr, proc.stderr
    # docker gets `--group-add video`, which may sit beside other groups.
    ok = vllm_playbook(tmp_path, "launcher: docker\nimage: rocm/vllm\ngpus: amd\ncontainer_args: [--group-add, render]\n")
    assert llmops("check", str(ok), timeout=60).returncode == 0
