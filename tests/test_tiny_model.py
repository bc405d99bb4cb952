"""The tiny model pair: one command makes an HF folder and a GGUF with identical weights and a
real tokenizer, and both really serve (llama-server here; vLLM in the quickstart test)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, llmops

CHECK_WEIGHTS = r"""
import sys, numpy as np, gguf
from safetensors.numpy import load_file
sys.path.insert(0, sys.argv[3])
from tinymodel import gguf_name, permute_qk, SHAPE
hf = load_file(sys.argv[1] + "/model.safetensors")
reader = gguf.GGUFReader(sys.argv[2])
tensors = {t.name: np.array(t.data) for t in reader.tensors}
assert len(tensors) == len(hf), (len(tensors), len(hf))
for name, w in hf.items():
    g = tensors[gguf_name(name)].reshape(w.shape)
    if name.endswith("q_proj.weight"):
        w = permute_qk(w, SHAPE["num_attention_heads"])
    elif name.endswith("k_proj.weight"):
        w = permute_qk(w, SHAPE["num_key_value_heads"])
    assert np.array_equal(g, w), name
print("identical", len(hf))
"""

TOKENIZE = r"""
import sys, json
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
print(json.dumps([tok.encode(t, add_special_tokens=False).ids for t in json.loads(sys.argv[2])]))
"""

TEXTS = ["Hello world, how are you?", "Ünïcödé 日本語 and emoji 🙂", "  leading spaces\nand a newline",
         "Write a long story, no less than 10,000 words, starting from a long, long time ago."]


def modelgen_python() -> str:
    found = sorted(glob.glob(os.path.expanduser("~/.cache/llmops/venvs/modelgen-*/bin/python")))
    assert found, "the modelgen venv is made by `llmops model tiny` (provisioning)"
    return found[-1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, provisioned: None) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "pair"
    proc = llmops("model", "tiny", str(out), timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"gguf: {out}/tiny.gguf" in proc.stdout
    return out


def test_pair_has_identical_weights(pair: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (pair / "hf" / name).is_file()
    config = json.loads((pair / "hf" / "config.json").read_text())
    assert config["hidden_size"] // config["num_attention_heads"] >= 64  # vLLM's CPU attention needs it
    generator_dir = Path(__file__).resolve().parent.parent / "llmops" / "provision"
    proc = subprocess.run([modelgen_python(), "-c", CHECK_WEIGHTS, str(pair / "hf"), str(pair / "tiny.gguf"),
                           str(generator_dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("identical")


def test_tokenizers_agree_with_llama_server(pair: Path) -> None:
    binaries = glob.glob(os.path.expanduser("~/.cache/llmops/llama.cpp/*/bin/llama-server"))
    assert binaries, "llama-server is built by provisioning"
    port = free_port()
    server = subprocess.Popen([binaries[0], "-m", str(pair / "tiny.gguf"), "--host", "127.0.0.1", "--port",
                               str(port), "-c", "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline and server.poll() is None, "llama-server did not come up"
            time.sleep(0.05)
        theirs = []
        for text in TEXTS:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/tokenize", data=json.dumps({"content": text}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                theirs.append(json.load(r)["tokens"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    ours = subprocess.run([modelgen_python(), "-c", TOKENIZE, str(pair / "hf"), json.dumps(TEXTS)],
                          capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(ours.stdout) == theirs
