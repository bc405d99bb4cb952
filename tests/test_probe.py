"""Typed llama.cpp options that match the pinned build (load_mode, hf_repo), and `llmops check --probe`
against the real `--help` of the llama-server this project builds and of vLLM CPU."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import llmops

from llmops.execute.probe import check_cell, command_flags, known_flags
from llmops.load.inventory import default_inventory
from llmops.load.playbook import load_playbook
from llmops.plan.planner import make_plan
from llmops.plugins.registry import registry

PROBE = "tests/playbooks/probe.yml"


def plan_of(tmp_path: Path, backend: str):
    path = tmp_path / "pb.yml"
    path.write_text(textwrap.dedent("""\
        - hosts: all
          backends:
            - name: l
              kind: llama.cpp
              model: /m.gguf
              port: 18000
        """) + textwrap.indent(textwrap.dedent(backend), " " * 6))
    return make_plan(load_playbook(str(path)), default_inventory(), registry().backends())


@pytest.mark.parametrize("options,flags", [
    ("", []),
    ("no_mmap: true\n", ["--load-mode", "none"]),
    ("mlock: true\n", ["--load-mode", "mmap+mlock"]),
    ("no_mmap: true\nmlock: true\n", ["--load-mode", "mlock"]),
    ("load_mode: dio\n", ["--load-mode", "dio"]),
])
def test_old_mmap_booleans_render_as_load_mode(tmp_path: Path, options: str, flags: list[str]) -> None:
    command = plan_of(tmp_path, options).cells[0].command
    assert "--no-mmap" not in command and "--mlock" not in command
    words = command.split()
    if flags:
        i = words.index("--load-mode")
        assert words[i:i + 2] == flags
    else:
        assert "--load-mode" not in words


def test_hf_repo_renders_hf_and_no_mmproj(tmp_path: Path) -> None:
    words = plan_of(tmp_path, "hf_repo: unsloth/Qwen3-0.6B-GGUF:Q4_K_M\n").cells[0].command.split()
    assert words[1:4] == ["-hf", "unsloth/Qwen3-0.6B-GGUF:Q4_K_M", "--no-mmproj"]
    assert "--model" not in words
    words = plan_of(tmp_path, "hf_repo: unsloth/Qwen3-0.6B-GGUF\nmmproj: true\n").cells[0].command.split()
    assert "--no-mmproj" not in words and words[1:3] == ["-hf", "unsloth/Qwen3-0.6B-GGUF"]


@pytest.mark.parametrize("options,expect", [
    ("load_mode: none\nno_mmap: true\n", ":8:16: llama.cpp backend.no_mmap: no_mmap cannot be combined"),
    ("load_mode: mmap\nmlock: true\n", ":8:14: llama.cpp backend.mlock: mlock cannot be combined"),
    ("load_mode: nommap\n", ":7:18:"),
    ("hf_repo: not a repo\n", ":7:16:"),
])
def test_contradictory_or_bad_load_options_are_refused_at_their_line(tmp_path: Path, options: str,
                                                                     expect: str) -> None:
    path = tmp_path / "pb.yml"
    path.write_text("- hosts: all\n  backends:\n    - name: l\n      kind: llama.cpp\n      model: /m.gguf\n"
                    "      port: 18000\n" + textwrap.indent(options, " " * 6))
    proc = llmops("check", str(path), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"{path}{expect}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_flags_of_a_rendered_command() -> None:
    assert command_flags("bin --model 'a b' --port 1 -hf u/r:Q4 --x=1 -- -5") == ["--model", "--port", "-hf", "--x"]
    assert {"--load-mode", "-lm", "--no-mmproj"} <= known_flags(
        "-lm,   --load-mode MODE   model loading mode\n  to disable, add\n --no-mmproj")


def test_probe_catches_no_mmap_on_the_pinned_build(provisioned: None) -> None:
    """Real: runs the built llama-server's and vLLM CPU's own --help (cached under ~/.cache/llmops)."""
    proc = llmops("check", PROBE, "--probe", timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    problems = [line for line in proc.stderr.splitlines() if line.startswith(PROBE)]
    # Exactly the two flags the binaries reject, each at the extra_args item it came from; the
    # typed no_mmap/mlock (rendered --load-mode mlock), -hf and --no-mmproj all pass.
    assert len(problems) == 2, proc.stderr
    assert problems[0].startswith(f"{PROBE}:14:20: localhost/llama: --no-mmap is not a flag"), problems
    assert problems[1].startswith(f"{PROBE}:31:20: localhost/vllm: --no-such-vllm-flag is not a flag"), problems
    assert "probe localhost/llama-hf: every flag is known to the binary" in proc.stderr
    assert "nothing was started" in proc.stderr


def test_probe_passes_the_quickstart(provisioned: None) -> None:
    proc = llmops("check", "playbooks/quickstart.yml", "--probe", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("every flag is known to the binary") == 3, proc.stderr


def test_probe_names_the_option_a_typed_flag_came_from(tmp_path: Path) -> None:
    cell = plan_of(tmp_path, "ctx_size: 64\nno_mmap: true\n").cells[0]
    # A help text of an older build that lacks --load-mode and --ctx-size.
    problems = check_cell(cell, "--model --host --port --alias")
    where = {p.message.split(": ")[1].split()[0]: (p.line, p.col) for p in problems}
    assert where == {"--ctx-size": (7, 7), "--load-mode": (8, 7)}
