"""Sources beyond one static file, each compared with `ansible-inventory` (ansible-core from the test extra):
an inventory plugin config (constructed), an executable inventory script, several -i merged in order,
host lists, TOML, Ansible Vault, and templated values kept as given until a host is used."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import llmops

from llmops.cli import main
from llmops.errors import ConfigError
from llmops.load.ansible_list import dumps, to_ansible_host, to_ansible_list, to_graph
from llmops.load.ansible_tools import VaultSecret
from llmops.load.sources import load_inventory

from .ansible_cli import isolated_env, require_ansible, run_many, vault_encrypt_file

CORPUS = Path(__file__).parent / "ansible_corpus"


@pytest.fixture()
def ansible_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The same settings for the oracle and for llmops' own calls to ansible-inventory."""
    require_ansible()
    work = tmp_path / "work"
    work.mkdir()
    env = isolated_env(work)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(work)
    return env


def oracle(*args: str) -> bytes:
    """ansible-inventory's stdout for ARGS, run in the ansible_env fixture's empty working folder with
    the same isolated settings (tests/inventory/ansible_cli.py: its answers are kept by version and
    input bytes). It writes UTF-8, so its text is its bytes."""
    (proc,) = run_many([list(args)], Path.cwd())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.encode()


def ansible_inventory(*args: str, env: dict[str, str]) -> str:
    assert env.get("ANSIBLE_CONFIG") == os.environ.get("ANSIBLE_CONFIG")  # the settings oracle() runs with
    return oracle(*args).decode().rstrip("\n")


def sources(*paths: Path | str) -> list[str]:
    return [a for p in paths for a in ("-i", str(p))]


def test_constructed_plugin_over_a_static_source_equals_ansible(tmp_path: Path, ansible_env: dict) -> None:
    static = tmp_path / "static.ini"
    static.write_text("[gpu]\nbox1 vram_gb=80 arch=hopper\nbox2 vram_gb=24 arch=ada\n[cpu]\nbox3 vram_gb=0\n")
    constructed = tmp_path / "constructed.yml"
    constructed.write_text(
        "plugin: ansible.builtin.constructed\nstrict: true\n"
        "compose:\n  big_card: vram_gb >= 48\n"
        "groups:\n  large: vram_gb >= 48\n"
        "keyed_groups:\n  - key: arch | default('none')\n    prefix: arch\n")
    inventory = load_inventory([str(static), str(constructed)])
    theirs = ansible_inventory(*sources(static, constructed), "--list", env=ansible_env)
    assert dumps(to_ansible_list(inventory)) == theirs
    assert [h.name for h in inventory.select("large")] == ["box1"]  # the groups the plugin made are usable
    assert inventory.hosts["box1"].vars["big_card"] is True
    assert to_graph(inventory) == ansible_inventory(*sources(static, constructed), "--graph", env=ansible_env)


def test_executable_inventory_script_equals_ansible(tmp_path: Path, ansible_env: dict) -> None:
    script = tmp_path / "lab.py"
    script.write_text(f"#!{sys.executable}\n" + '''import json, sys
if sys.argv[1:] == ["--list"]:
    print(json.dumps({
        "gpu": {"hosts": ["node-1", "nöde-2"], "vars": {"llmops_cache": "/srv/cache"}},
        "lab": {"children": ["gpu"]},
        "_meta": {"hostvars": {"node-1": {"ansible_host": "127.0.0.1", "ansible_port": 2201},
                               "nöde-2": {"ansible_host": "127.0.0.1", "note": "ünïcode"}}},
    }))
else:
    print("{}")
''')
    script.chmod(0o755)
    inventory = load_inventory(str(script))
    assert dumps(to_ansible_list(inventory)) == ansible_inventory("-i", str(script), "--list", env=ansible_env)
    assert dumps(to_ansible_host(inventory, "nöde-2")) == ansible_inventory("-i", str(script), "--host", "nöde-2",
                                                                          env=ansible_env)
    (node,) = inventory.select("node-1")
    assert (node.address, node.port, node.vars["llmops_cache"]) == ("127.0.0.1", 2201, "/srv/cache")


def test_plugins_without_ansible_core_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "aws_ec2.yml"
    config.write_text("plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n")
    monkeypatch.setattr("llmops.load.ansible_tools.find_program", lambda name: None)
    with pytest.raises(ConfigError, match=r"aws_ec2.yml:1:1: an inventory plugin configuration "
                                          r"\(plugin: amazon.aws.aws_ec2\) needs ansible-core.*pip install"):
        load_inventory(str(config))


def test_several_sources_and_host_lists_merge_in_order(tmp_path: Path, ansible_env: dict) -> None:
    first = tmp_path / "a" / "first.ini"
    first.parent.mkdir()
    first.write_text("[web]\nw1 tier=1\n[web:vars]\nport=80\n")
    (tmp_path / "a" / "group_vars").mkdir()
    (tmp_path / "a" / "group_vars" / "web.yml").write_text("from_a: yes\nshared: a\n")
    second = tmp_path / "b" / "second.toml"
    second.parent.mkdir()
    second.write_text('[web.hosts]\nw1 = { tier = 2 }\nw2 = {}\n[db.hosts."d1:2222"]\n')
    (tmp_path / "b" / "group_vars").mkdir()
    (tmp_path / "b" / "group_vars" / "web.yml").write_text("shared: b\n")
    args = [str(first), str(second), "extra1,extra2:2200,"]
    inventory = load_inventory(args)
    assert dumps(to_ansible_list(inventory)) == ansible_inventory(*sources(*args), "--list", env=ansible_env)
    assert inventory.hosts["w1"].vars["shared"] == "b"  # the later source wins


def test_templated_values_are_kept_and_rendered_when_used(tmp_path: Path, ansible_env: dict) -> None:
    source = tmp_path / "inv.ini"
    source.write_text('[gpu]\ng1 ansible_host="{{ inventory_hostname }}.lab" ansible_port=@PORT\n'
                      'g2 ansible_host="{{ groups.gpu[0] }}.lab"\n'
                      '[all:vars]\nansible_python_interpreter="{{ ansible_playbook_python }}"\n')
    inventory = load_inventory(str(source))
    assert dumps(to_ansible_list(inventory)) == ansible_inventory("-i", str(source), "--list", env=ansible_env)
    assert inventory.hosts["g1"].vars["ansible_port"] == "@PORT"  # as given, until used
    (g2,) = inventory.select("g2")
    assert (g2.address, g2.python) == ("g1.lab", sys.executable)
    with pytest.raises(ConfigError, match=r"inv.ini:2:\d+: host 'g1': ansible_port: '@PORT' is not a port number"):
        inventory.select("gpu")


def test_vault_file_is_decrypted_through_ansible_vault(tmp_path: Path, ansible_env: dict) -> None:
    case = CORPUS / "ansible-vault--vaulted.inventory"
    password = case / "vault-password"
    with pytest.raises(ConfigError, match=r"vaulted.inventory:1:1: encrypted with Ansible Vault"):
        load_inventory(str(case / "vaulted.inventory"))
    inventory = load_inventory(str(case / "vaulted.inventory"), VaultSecret(password_file=str(password)))
    theirs = ansible_inventory("-i", str(case / "vaulted.inventory"), "--list", "--vault-password-file",
                               str(password), env=ansible_env)
    assert dumps(to_ansible_list(inventory)) == theirs
    # a password typed at --ask-vault-pass reaches ansible-vault on a pipe, never on its command line
    typed = load_inventory(str(case / "vaulted.inventory"), VaultSecret(password=password.read_text().strip()))
    assert dumps(to_ansible_list(typed)) == theirs
    with pytest.raises(ConfigError, match="ansible-vault could not decrypt it"):
        load_inventory(str(case / "vaulted.inventory"), VaultSecret(password="wrong"))


def test_vaulted_toml_and_group_vars(tmp_path: Path, ansible_env: dict) -> None:
    source = tmp_path / "inventory.toml"
    shutil.copy(CORPUS / "ansible-vault--inventory.toml" / "inventory.toml", source)
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("secret_word: hunter2\n")
    password = CORPUS / "ansible-vault--vaulted.inventory" / "vault-password"
    for path in (source, tmp_path / "group_vars" / "all.yml"):
        vault_encrypt_file(path, password, ansible_env)
    inventory = load_inventory(str(source), VaultSecret(password_file=str(password)))
    theirs = ansible_inventory("-i", str(source), "--list", "--vault-password-file", str(password), env=ansible_env)
    assert dumps(to_ansible_list(inventory)) == theirs
    assert "hunter2" in theirs


def test_cli_list_graph_host_equal_ansible_byte_for_byte(tmp_path: Path, ansible_env: dict) -> None:
    source = tmp_path / "inv.toml"
    source.write_text('[all.vars]\ngreeting = "grüß dich"\n[gpu.hosts."café-1"]\nansible_port = 2222\n'
                      '[lab]\nchildren = ["gpu"]\n')
    runner = CliRunner()
    for args in (["--list"], ["--graph"], ["--host", "café-1"]):
        result = runner.invoke(main, ["inventory", "-i", str(source), *args])
        assert result.exit_code == 0, result.output
        theirs = oracle("-i", str(source), *args)
        assert result.stdout_bytes == theirs, args


def test_cli_output_with_non_ascii_names_and_values_is_ansibles_bytes(tmp_path: Path, ansible_env: dict) -> None:
    """Non-ASCII host, group and variable names and values (accents, CJK, an emoji beyond the BMP, a
    combining accent) from INI, host_vars/ and a second YAML source: `llmops inventory` run as a
    program writes the same bytes as ansible-inventory (raw UTF-8, no \\u escapes)."""
    lab = tmp_path / "lab"
    (lab / "host_vars").mkdir(parents=True)
    (lab / "hosts.ini").write_text('[grüppe]\nhöst-1 ansible_host=127.0.0.1 beschreibung="Größe 日本"\n'
                                   "[grüppe:vars]\nnote=ünïcode\n", encoding="utf-8")
    (lab / "host_vars" / "höst-1.yml").write_text('emoji: "🚀 ok"\nschlüssel: wert\ncombining: "e\u0301"\n',
                                                   encoding="utf-8")
    more = tmp_path / "mehr.yml"
    more.write_text("服务器:\n  hosts:\n    节点-2:\n      ansible_port: 2222\n      größe: [ä, 日本]\n"
                    "  children:\n    grüppe:\n", encoding="utf-8")
    inventory_args = sources(lab / "hosts.ini", more)
    for args in (["--list"], ["--graph"], ["--host", "höst-1"], ["--host", "节点-2"]):
        # a process of its own, its stdout a pipe (through the fast tier's fork server)
        ours = llmops("inventory", *inventory_args, *args, cwd=Path.cwd(), env=ansible_env)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout.encode() == oracle(*inventory_args, *args), args
        assert "\\u" not in ours.stdout
        if args == ["--list"]:
            assert "日本" in ours.stdout and "🚀" in ours.stdout


@pytest.mark.parametrize(("name", "text"), [("empty.yml", ""), ("blank.ini", "\n  \n"), ("comments.yml", "# only\n"),
                                            ("comments", "# a\n; b\n")])
def test_empty_and_comment_only_sources_are_empty_inventories(tmp_path: Path, ansible_env: dict, name: str,
                                                              text: str) -> None:
    source = tmp_path / name
    source.write_text(text)
    inventory = load_inventory(str(source))
    assert inventory.hosts == {}
    assert dumps(to_ansible_list(inventory)) == ansible_inventory("-i", str(source), "--list", env=ansible_env)


def test_cli_takes_several_sources_and_a_vault_password_file(tmp_path: Path, ansible_env: dict) -> None:
    case = CORPUS / "ansible-vault--vaulted.inventory"
    extra = tmp_path / "more.ini"
    extra.write_text("[lab]\nbox1\n")
    args = ["-i", str(case / "vaulted.inventory"), "-i", str(extra), "--list",
            "--vault-password-file", str(case / "vault-password")]
    result = CliRunner().invoke(main, ["inventory", *args])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == oracle(*args)
    refused = CliRunner().invoke(main, ["inventory", "-i", str(case / "vaulted.inventory"), "--list"])
    assert refused.exit_code == 2 and "vaulted.inventory:1:1: encrypted with Ansible Vault" in refused.output
    # apply takes several -i too: tests/inventory/test_apply_sources.py
