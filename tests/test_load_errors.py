"""Bad input is reported as FILE:LINE:COL: what is wrong (what was expected), exit code 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import llmops

GOOD_BACKEND = """\
- hosts: all
  backends:
    - name: llama
      kind: llama.cpp
      model: /models/m.gguf
      port: 8080
"""

CASES = [
    ("unknown key with suggestion", GOOD_BACKEND + "  benchmark:\n    max_tokns: 5\n",
     "pb.yml:8:5: unknown key 'max_tokns' in plays[0].benchmark (did you mean 'max_tokens'?"),
    ("wrong type", GOOD_BACKEND.replace("port: 8080", "port: eighty"),
     "pb.yml:6:13: backend.port: 'eighty' is not an integer (expected an integer)"),
    ("port out of range", GOOD_BACKEND.replace("port: 8080", "port: 70000"),
     "pb.yml:6:13: backend.port: 70000 is out of range (a value <= 65535)"),
    ("missing model", GOOD_BACKEND.replace("      model: /models/m.gguf\n", ""),
     "pb.yml:3:7: missing required key 'model' in backend (expected a string)"),
    ("undefined variable", GOOD_BACKEND.replace("/models/m.gguf", '"{{ models_dir }}/m.gguf"'),
     "pb.yml:5:14: undefined variable 'models_dir' (a variable from the inventory, the play's vars or -e)"),
    ("unknown kind", GOOD_BACKEND.replace("kind: llama.cpp", "kind: llamacpp"),
     "pb.yml:4:13: unknown backend kind 'llamacpp' (did you mean 'llama.cpp'?"),
    ("unknown backend option", GOOD_BACKEND + "      ctx_sise: 4096\n",
     "pb.yml:7:7: unknown key 'ctx_sise' in llama.cpp backend (did you mean 'ctx_size'?"),
    ("yaml syntax", GOOD_BACKEND.replace("port: 8080", "port: [8080"),
     "pb.yml:7:1: invalid YAML"),
    ("tab indentation", "- hosts: all\n\tbackends: []\n",
     "pb.yml:2:1: tab character used for indentation (spaces for indentation)"),
    ("duplicate key", GOOD_BACKEND.replace("port: 8080", "port: 8080\n      port: 8081"),
     "pb.yml:7:7: duplicate key 'port' (first defined on line 6) (each key once per mapping)"),
    ("empty file", "", "pb.yml:1:1: playbook is empty (a list of plays)"),
    ("scalar playbook", "hello\n", "pb.yml:1:1: playbook must be a list of plays (or one play)"),
    ("no backends", "- hosts: all\n  backends: []\n",
     "pb.yml:2:13: plays[0].backends: the list is empty (at least 1 item(s))"),
    ("variant option type", GOOD_BACKEND + "      variants:\n        - name: np4\n          parallel: four\n",
     "pb.yml:9:21: llama.cpp backend.parallel: 'four' is not an integer"),
    ("bad variant name", GOOD_BACKEND + "      variants:\n        - name: 'np 4'\n          parallel: 4\n",
     "pb.yml:8:17: variant name 'np 4' has characters not allowed"),
    ("template not found", GOOD_BACKEND + "      template: nothere.j2\n",
     "pb.yml:3:7: template 'nothere.j2' not found"),
    ("concurrency zero", GOOD_BACKEND + "  benchmark:\n    concurrency: [1, 0]\n",
     "pb.yml:8:22: plays[0].benchmark.concurrency[1]: 0 is out of range (a value >= 1)"),
]


@pytest.mark.parametrize("label,text,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_playbook_is_located(tmp_path: Path, label: str, text: str, expected: str) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(text)
    proc = llmops("check", "pb.yml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert "nothing was started" in proc.stderr


def test_binary_garbage(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_bytes(b"- hosts: all\n\x89PNG\r\n\x1a\n\x00\x00")
    proc = llmops("check", "pb.yml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "pb.yml:2:1: not UTF-8 text (binary file?)" in proc.stderr


def test_missing_file(tmp_path: Path) -> None:
    proc = llmops("check", "nope.yml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "nope.yml:1:1: file not found" in proc.stderr


def test_inventory_errors_are_located(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(GOOD_BACKEND)
    (tmp_path / "inv.yml").write_text(textwrap.dedent("""\
        hosts:
          lab1:
            host: 10.0.0.1
            prot: 22
        groups:
          gpu:
            hosts: [lab2]
    """))
    proc = llmops("check", "pb.yml", "-i", "inv.yml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "inv.yml:4:5: unknown key 'prot' in hosts.lab1 (did you mean 'port'?" in proc.stderr


def test_template_undefined_variable_points_at_template(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "llama-server.j2").write_text("{{ binary }}\n  --model {{ model }}\n  --x {{ gpu_arch }}\n")
    (tmp_path / "pb.yml").write_text(GOOD_BACKEND)
    proc = llmops("check", "pb.yml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "llama-server.j2:3:1: undefined variable 'gpu_arch' in template (used by pb.yml:3)" in proc.stderr
