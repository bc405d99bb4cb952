"""Rendered commands: golden files, and values that try to escape shell quoting."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import llmops

from llmops.load.inventory import default_inventory
from llmops.load.playbook import load_playbook
from llmops.plan.planner import make_plan
from llmops.plugins.registry import registry

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "check"


def check_output(*args: str) -> str:
    proc = llmops("check", *args, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name,args", [
    ("quickstart", ["playbooks/quickstart.yml"]),
    ("compare-lab", ["playbooks/compare.yml", "-i", "inventory/lab.yml"]),
    ("launchers", ["tests/playbooks/launchers.yml"]),
])
def test_check_golden(name: str, args: list[str]) -> None:
    out = check_output(*args)
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(out)
    assert out == golden.read_text()


HOSTILE = ["; rm -rf ~", "$(touch /tmp/llmops-pwned)", "`id`", "a\nb", "it's", '"quoted"', "*", "&& echo hi",
           "$HOME", "|cat", ">x", "--flag=a b"]


def test_hostile_values_stay_literal(tmp_path: Path) -> None:
    "\n".join(f"        - {v!r}".replace("\\n", "\\n") for v in HOSTILE)
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: all\n"
        "  backends:\n"
        "    - name: x\n"
        "      kind: llama.cpp\n"
        "      model: \"/models/my model's; $(x).gguf\"\n"
        "      port: 8080\n"
        "      alias: \"`whoami`\"\n"
        "      extra_args:\n" + "\n".join(f"        - {_yaml_str(v)}" for v in HOSTILE) + "\n"
    )
    plan = make_plan(load_playbook(pb), default_inventory(), registry().backends())
    cell = plan.cells[0]
    argv = shlex.split(cell.command)
    assert argv[argv.index("--model") + 1] == "/models/my model's; $(x).gguf"
    assert argv[argv.index("--alias") + 1] == "`whoami`"
    assert argv[-len(HOSTILE):] == HOSTILE
    # And the shell agrees: printf each word back through a real /bin/sh.
    echoed = subprocess.run(["/bin/sh", "-c", "printf '%s\\0' " + cell.command.split(" ", 1)[1]],
                            capture_output=True, timeout=10).stdout.decode().split("\0")[:-1]
    assert echoed == argv[1:]
    assert not Path("/tmp/llmops-pwned").exists()


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def test_variants_and_matrix_expand_without_copy_paste(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: all\n"
        "  backends:\n"
        "    - name: l\n"
        "      kind: llama.cpp\n"
        "      model: /m.gguf\n"
        "      port: 8080\n"
        "      env: {A: '1'}\n"
        "      variants:\n"
        "        - {name: small, ctx_size: 2048}\n"
        "        - {name: big, ctx_size: 8192, env: {B: '2'}}\n"
        "      matrix:\n"
        "        parallel: [1, 4]\n"
    )
    plan = make_plan(load_playbook(pb), default_inventory(), registry().backends())
    names = [c.name for c in plan.cells]
    assert names == ["l-small,parallel=1", "l-small,parallel=4", "l-big,parallel=1", "l-big,parallel=4"]
    big4 = plan.cells[3]
    assert "--ctx-size 8192 --parallel 4" in big4.command
    assert big4.env == {"A": "1", "B": "2"}
    assert plan.cells[0].env == {"A": "1"}


def test_secret_env_is_masked_in_display(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: all\n"
        "  backends:\n"
        "    - name: l\n"
        "      kind: llama.cpp\n"
        "      model: /m.gguf\n"
        "      port: 8080\n"
        "      api_key: sk-very-secret-1234\n"
        "      env: {HF_TOKEN: hf_abcdefsecret, OTHER: visible}\n"
    )
    plan = make_plan(load_playbook(pb), default_inventory(), registry().backends())
    cell = plan.cells[0]
    assert cell.env["HF_TOKEN"] == "hf_abcdefsecret" and cell.env["LLAMA_API_KEY"] == "sk-very-secret-1234"
    assert cell.display_env == {"HF_TOKEN": "***", "LLAMA_API_KEY": "***", "OTHER": "visible"}
    text = str(plan.describe())
    assert "sk-very-secret" not in text and "hf_abcdef" not in text
    assert "sk-very-secret" not in cell.command  # the key goes through the environment, not argv


def test_container_home_paths_expand_on_the_host(tmp_path: Path) -> None:
    """`~/` in container_args and the cache mounts is the host's home: never quoted away (a
    quoted `~` does not expand), while the rest of the value stays quoted."""
    playbook = tmp_path / "pb.yml"
    playbook.write_text(
        "- hosts: all\n"
        "  backends:\n"
        "    - name: v\n"
        "      kind: vllm\n"
        "      model: Qwen/Qwen3-0.6B\n"
        "      port: 8010\n"
        "      launcher: podman\n"
        "      image: localhost/vllm:test\n"
        "      container_args: ['-v', '~/.cache/extra:/extra', '-v', '~/$(touch x):/y']\n"
    )
    proc = llmops("apply", str(playbook), "--check", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "-v ~/.cache/huggingface:/root/.cache/huggingface -v ~/.cache/vllm:/root/.cache/vllm" in proc.stdout
    assert "-v ~/.cache/extra:/extra" in proc.stdout
    assert "-v ~/'$(touch x):/y'" in proc.stdout  # expanded home, quoted rest: never a command


def test_which_variants_serve_metrics(tmp_path: Path) -> None:
    """`metrics: true` (or --metrics in extra_args) renders --metrics and makes apply scrape
    /metrics; vLLM always serves it; a llama.cpp variant without it is not scraped (it would 501)."""
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: all\n"
        "  backends:\n"
        "    - {name: on, kind: llama.cpp, model: /m.gguf, port: 8080, metrics: true}\n"
        "    - {name: extra, kind: llama.cpp, model: /m.gguf, port: 8081, extra_args: [--metrics]}\n"
        "    - {name: off, kind: llama.cpp, model: /m.gguf, port: 8082}\n"
        "    - {name: v, kind: vllm, model: /hf, port: 8083}\n")
    plan = make_plan(load_playbook(pb), default_inventory(), registry().backends())
    backends = registry().backends()
    got = {c.name: (backends[c.kind].metrics_path(c.spec), "--metrics" in shlex.split(c.command))
           for c in plan.cells}
    assert got == {"on": ("/metrics", True), "extra": ("/metrics", True), "off": (None, False), "v": ("/metrics", False)}
