"""Inline `!vault |` values in YAML inventories, group_vars/ and host_vars/ (JSON's __ansible_vault too),
made in each test with `ansible-vault encrypt_string` (ansible-core from the test extra):
listed as `ansible-inventory` lists them, named at FILE:LINE:COL when no password is given,
decrypted through ansible-vault (one run for all values) when one is, and masked everywhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sshd import free_port

from llmops import secrets
from llmops.cli import main
from llmops.errors import ConfigError
from llmops.load import ansible_tools
from llmops.load.ansible_list import dumps, to_ansible_host, to_ansible_list
from llmops.load.ansible_tools import VaultSecret
from llmops.load.sources import load_inventory
from llmops.shell import Secret

from .ansible_cli import vault_encrypt_string
from .test_ansible_sources import ansible_env, ansible_inventory  # noqa: F401 - a fixture

PLAYBOOK = str(Path(__file__).resolve().parents[1] / "playbooks" / "faults.yml")
API_KEY = "sk-vaulted-key-1234"  # ASCII: it goes into an HTTP header
BECOME = "become-pass-ключ-5678"  # non-ASCII on purpose: the plaintext comes back as UTF-8
USER = "vaulted-user"


def encrypt_string(value: str, password: Path, env: dict[str, str]) -> str:
    return vault_encrypt_string(value, password, env)


def indent(block: str, spaces: int) -> str:
    first, *rest = block.splitlines()
    return "\n".join([first] + [" " * spaces + line.strip() for line in rest])


@pytest.fixture()
def lab(tmp_path: Path, ansible_env: dict) -> dict:  # noqa: F811
    password = tmp_path / "vault-pass"
    password.write_text("correct horse\n")
    root = tmp_path / "lab"
    (root / "group_vars").mkdir(parents=True)
    (root / "host_vars").mkdir()
    source = root / "hosts.yml"
    source.write_text("all:\n  children:\n    gpu:\n      hosts:\n        h1:\n          ansible_connection: local\n"
                      f"          api_key: {indent(encrypt_string(API_KEY, password, ansible_env), 12)}\n"
                      "        h2:\n          ansible_connection: local\n")
    (root / "group_vars" / "gpu.yml").write_text(
        f"become_pass: {indent(encrypt_string(BECOME, password, ansible_env), 2)}\nplain: 1\n")
    ciphertext = encrypt_string(USER, password, ansible_env).split("\n", 1)[1]
    (root / "host_vars" / "h2.json").write_text(json.dumps(
        {"ansible_user": {"__ansible_vault": "\n".join(line.strip() for line in ciphertext.splitlines()) + "\n"}}))
    return {"source": source, "password": password, "env": ansible_env}


def test_listed_as_ansible_lists_it_and_named_when_used_without_a_password(lab: dict) -> None:
    inventory = load_inventory(str(lab["source"]))
    assert dumps(to_ansible_list(inventory)) == ansible_inventory("-i", str(lab["source"]), "--list", env=lab["env"])
    with pytest.raises(ConfigError) as refused:
        inventory.select("h1")
    line = lab["source"].read_text().splitlines().index(
        next(t for t in lab["source"].read_text().splitlines() if "api_key: !vault" in t))
    group_vars = lab["source"].parent / "group_vars" / "gpu.yml"
    assert str(refused.value).splitlines() == [  # every encrypted value the host has, each where it was written
        f"{group_vars}:1:14: host 'h1': become_pass: vault-encrypted value; give --vault-password-file or "
        "--ask-vault-pass (decrypted through ansible-vault)",
        f"{lab['source']}:{line + 1}:20: host 'h1': api_key: vault-encrypted value; give --vault-password-file or "
        "--ask-vault-pass (decrypted through ansible-vault)"]
    with pytest.raises(ConfigError) as refused:
        inventory.select("h2")
    assert [p.message.split(":")[1] for p in refused.value.problems] == [" become_pass", " ansible_user"]
    assert refused.value.problems[1].file.endswith("host_vars/h2.json")  # JSON's __ansible_vault, located too


def test_decrypted_through_one_ansible_vault_run_and_masked(lab: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(args, *rest, **kwargs):  # noqa: ANN001, ANN202 - a spy on the ansible-vault calls
        if "decrypt" in args:
            runs.append(list(args))
        return real_run(args, *rest, **kwargs)

    monkeypatch.setattr(ansible_tools.subprocess, "run", counting_run)
    inventory = load_inventory(str(lab["source"]), VaultSecret(password_file=str(lab["password"])))
    assert len(runs) == 1 and str(lab["password"]) in runs[0]  # three values, one run
    h1, h2 = inventory.select("h1:h2")
    assert h1.vars["api_key"] == API_KEY and isinstance(h1.vars["api_key"], Secret)
    assert h2.vars["become_pass"] == BECOME and h2.user == USER
    assert inventory.group_vars["gpu"]["become_pass"] == BECOME
    # listed encrypted, as ansible-inventory lists it with the password given too
    theirs = ansible_inventory("-i", str(lab["source"]), "--list", "--vault-password-file", str(lab["password"]),
                               env=lab["env"])
    assert dumps(to_ansible_list(inventory)) == theirs
    assert json.loads(dumps(to_ansible_host(inventory, "h2")))["ansible_user"]["__ansible_vault"].startswith(
        "$ANSIBLE_VAULT;1.1;AES256")
    for value in (API_KEY, BECOME, USER):  # registered: scrubbed from whatever llmops writes or prints
        assert secrets.scrub(f"x {value} y") == "x *** y"
    # a typed password (--ask-vault-pass) reaches ansible-vault on a pipe, never on its command line
    typed = load_inventory(str(lab["source"]), VaultSecret(password="correct horse"))
    assert typed.hosts["h1"].vars["api_key"] == API_KEY and "correct horse" not in " ".join(runs[-1])


def test_a_wrong_password_names_the_value(lab: dict) -> None:
    with pytest.raises(ConfigError, match=r"hosts.yml:\d+:20: ansible-vault could not decrypt this value: .*"
                                          r"\(the right vault password\)"):
        load_inventory(str(lab["source"]), VaultSecret(password="wrong"))


def test_check_uses_the_plaintext_and_never_shows_it(lab: dict) -> None:
    """The vaulted api_key reaches the planned server (as LLAMA_API_KEY), masked in every output."""
    base = ["check", PLAYBOOK, "-i", str(lab["source"]), "-l", "h1", "-t", "llama", "--json"]
    refused = CliRunner().invoke(main, base)
    assert refused.exit_code == 2 and "api_key: vault-encrypted value" in refused.output
    assert "Traceback" not in refused.output
    result = CliRunner().invoke(main, [*base, "--vault-password-file", str(lab["password"])])
    assert result.exit_code == 0, result.output
    assert API_KEY not in result.output and re.search(r"LLAMA_API_KEY\W+\*\*\*", result.output)
    planned = subprocess.run([sys.executable, "-m", "llmops", *base, "--ask-vault-pass"], input="correct horse\n",
                             capture_output=True, text=True, timeout=120, env=lab["env"])
    assert planned.returncode == 0, planned.stderr
    assert API_KEY not in planned.stdout + planned.stderr


def test_apply_sends_the_decrypted_key_and_keeps_it_out_of_the_run_dir(lab: dict, tmp_path: Path) -> None:
    """The emulator is told the plaintext key (from a file of the test's) and refuses any other (401),
    so succeeding requests prove that llmops sent the decrypted value; the run directory has it
    nowhere, and its inventory copy keeps the ciphertext, so --replay with the password makes the
    same plan."""
    expected = tmp_path / "emulator.json"
    expected.write_text(json.dumps({"api_key": API_KEY}))
    playbook = tmp_path / "pb" / "vaulted.yml"
    shutil.copytree(Path(PLAYBOOK).parent / "templates", playbook.parent / "templates")
    playbook.write_text(
        "- name: vaulted\n  hosts: gpu\n  backends:\n    - name: emulator\n      kind: llama.cpp\n"
        "      model: /emulated.gguf\n      port: \"{{ port }}\"\n      binary: \"{{ emu_python }}\"\n"
        "      template: emulator.j2\n      api_key: \"{{ api_key }}\"\n      ready_timeout: 30\n"
        f"      extra_args: [--config, \"@{expected}\"]\n"
        "  benchmark:\n    repeat: 1\n    concurrency: [1]\n    max_tokens: 4\n")
    run = tmp_path / "run"
    args = ["-i", str(lab["source"]), "-l", "h1", "-e", f"emu_python={sys.executable}",
            "--vault-password-file", str(lab["password"])]
    result = CliRunner().invoke(main, ["apply", str(playbook), "--reports", "md", *args, "-e", f"port={free_port()}",
                                       "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    (cell,) = json.loads((run / "results.json").read_text())["cells"]
    assert cell["status"] == "ok" and cell["levels"][0]["success_rate"] == 1.0, cell
    assert API_KEY not in result.output
    for path in run.rglob("*"):
        assert not path.is_file() or API_KEY.encode() not in path.read_bytes(), path
    copy = run / "inventories" / "01" / "hosts.yml"
    assert copy.read_text() == lab["source"].read_text()  # the ciphertext, as it was
    again = tmp_path / "again"
    assert (run / "templates" / "emulator.j2").exists()  # kept beside the playbook copy, for --replay
    replayed = CliRunner().invoke(main, ["apply", "--reports", "md", "--replay", str(run), "--run-dir", str(again),
                                         "--vault-password-file", str(lab["password"])])
    assert replayed.exit_code == 0, replayed.output
    assert json.loads((again / "plan.json").read_text())["cells"][0]["command"] == cell["command"]
