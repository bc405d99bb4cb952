"""Issue 14: secrets planted under every name class, in every place a value can come from, reach the
server that needs one and nothing else: not the run directory, the host-side run folder, the
terminal at -vvv, nor `ps` while the server runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sshd import free_port

REPO = Path(__file__).resolve().parent.parent
# Not secret by name: must show up where the secrets do not, or the grep below proves nothing.
CONTROL = "control-value-not-secret"


def _planted() -> dict[str, str]:
    # Distinct values per place, each long enough to be scrubbed (docs/secrets.md: >= 4 characters).
    return {place: f"planted-{place}-{os.urandom(6).hex()}" for place in (
        "play_vars", "backend_env", "api_key", "inv_file", "group_vars", "host_vars",
        "e_kv", "e_file", "environ", "secret_tag")}


def _write_project(root: Path, s: dict[str, str], remote: Path, folder: bool) -> Path:
    (root / "templates").mkdir(parents=True)
    shutil.copy(REPO / "tests/playbooks/templates/emulator.j2", root / "templates/emulator.j2")
    inv = root / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "hosts.ini").write_text(
        f"[lab]\nlocalhost ansible_connection=local hf_token={s['inv_file']}\n")
    (inv / "group_vars/all.yml").write_text(
        f"x_auth_header: {s['group_vars']}\nllmops_remote_dir: {remote}\nplain_marker: {CONTROL}\n")
    (inv / "host_vars/localhost.yml").write_text(f"DbPass: {s['host_vars']}\n")
    if not folder:  # the same values in one YAML inventory file
        shutil.rmtree(inv)
        inv = root / "hosts.yml"
        inv.write_text(f"""\
all:
  vars:
    x_auth_header: {s['group_vars']}
    llmops_remote_dir: {remote}
    plain_marker: {CONTROL}
  hosts:
    localhost:
      ansible_connection: local
      hf_token: {s['inv_file']}
      DbPass: {s['host_vars']}
""")
    (root / "extra.json").write_text(json.dumps({"svc_pwd": s["e_file"]}))
    (root / "play.yml").write_text(f"""\
- name: planted
  hosts: all
  vars:
    MY_SIGNING_KEY: {s['play_vars']}
    tagged: !secret {s['secret_tag']}
  backends:
    - name: emulator
      kind: llama.cpp
      model: /emulated.gguf
      port: "{{{{ port }}}}"
      binary: "{{{{ emu_python }}}}"
      template: emulator.j2
      ready_timeout: 30
      stop_timeout: 5
      api_key: {s['api_key']}
      extra_args: "{{{{ emu_args | default([]) }}}}"
      env:
        Aws_Credential_File: {s['backend_env']}
        FROM_PLAY: "{{{{ MY_SIGNING_KEY }}}}"
        FROM_GROUP: "{{{{ x_auth_header }}}}"
        FROM_HOST: "{{{{ DbPass }}}}"
        FROM_INV: "{{{{ hf_token }}}}"
        FROM_E: "{{{{ MY_CREDENTIAL }}}}"
        FROM_EFILE: "{{{{ svc_pwd }}}}"
        PLAIN_NAME: "{{{{ tagged }}}}"
        VISIBLE: "{{{{ plain_marker }}}}"
  benchmark:
    repeat: 1
    concurrency: [1]
    max_tokens: 4
""")
    return inv


def _status_without_key(port: int) -> int:
    body = json.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as refused:
        return refused.code
    except OSError:
        return 0  # not listening yet: the sampler tries again


@pytest.mark.real
@pytest.mark.parametrize("folder", [True, False], ids=["folder-inventory", "file-inventory"])
def test_planted_secrets_reach_the_server_and_nothing_else(tmp_path: Path, folder: bool) -> None:
    _apply_and_grep(tmp_path, folder, wrong_key=False)


@pytest.mark.real
def test_a_refused_key_quoted_back_by_the_server_is_masked_too(tmp_path: Path) -> None:
    """The emulator (like some real servers) quotes the key it got in its 401 text; that text lands in
    results and on the terminal, so it must be scrubbed there as well."""
    _apply_and_grep(tmp_path, True, wrong_key=True)


def _apply_and_grep(tmp_path: Path, folder: bool, wrong_key: bool) -> None:
    s = _planted()
    remote = tmp_path / "remote"
    inv = _write_project(tmp_path / "project", s, remote, folder)
    run_dir = tmp_path / "run"
    env = {**os.environ, "OUTER_API_TOKEN": s["environ"], "PYTHONPATH": str(REPO)}
    port = free_port()
    cmd = [sys.executable, "-m", "llmops", "apply", str(tmp_path / "project/play.yml"), "-i", str(inv),
           "--run-dir", str(run_dir), "-vvv", "-e", f"port={port}", "-e", f"emu_python={sys.executable}",
           "-e", f"MY_CREDENTIAL={s['e_kv']}", "-e", f"@{tmp_path / 'project/extra.json'}"]
    if wrong_key:
        cmd += ["-e", json.dumps({"emu_args": ["--config", json.dumps({"api_key": "another-key-entirely"})]})]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                            cwd=tmp_path)
    ps_samples: list[str] = []
    keyless: list[int] = []

    def sample() -> None:  # `ps -eo args` while the run (and so the server) is up
        while proc.poll() is None:
            ps_samples.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
            if 401 not in keyless and "llmops.bench.emulator" in ps_samples[-1]:
                keyless.append(_status_without_key(port))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output, _ = proc.communicate(timeout=240)
    sampler.join()
    (tmp_path / "terminal.txt").write_text(output)
    if wrong_key:
        assert "invalid API key" in output, output  # the server's text did come through
    else:
        assert proc.returncode == 0, output
    ps_text = "\n".join(ps_samples)
    assert "llmops.bench.emulator" in ps_text, "ps never saw the server: the sampling proves nothing"

    # The key did reach the server: it refused a request without it, and llmops' requests succeeded.
    # (With the wrong key the server is up for a moment only, and its own "invalid API key",
    # quoted above, already shows that it demanded one; a keyless probe may find it gone.)
    if not wrong_key:
        assert 401 in keyless, f"the server did not demand the key (status {keyless}): it never got it"
        assert "c=1: 1/1 ok" in output and "invalid API key" not in output, output

    places: dict[str, str] = {"terminal at -vvv": output, "ps -eo args": ps_text}
    for shown in (["--list"], ["--host", "localhost"]):  # the inventory as llmops shows it
        listed = subprocess.run([sys.executable, "-m", "llmops", "inventory", "-i", str(inv), *shown],
                                capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
        assert listed.returncode == 0 and CONTROL in listed.stdout, listed.stdout + listed.stderr
        places[f"llmops inventory {' '.join(shown)}"] = listed.stdout + listed.stderr
    for root in (run_dir, remote):
        for path in root.rglob("*"):
            if path.is_file():
                places[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any(str(remote) in p for p in places), "the host-side run folder was not used"
    assert any(CONTROL in text for where, text in places.items() if where.startswith(str(run_dir))), \
        "a plain value never reached the run directory: the grep would find nothing either way"
    hits = [f"{where}: {name}" for where, text in places.items() for name, value in s.items() if value in text]
    assert not hits, "planted secrets found:\n" + "\n".join(hits)
