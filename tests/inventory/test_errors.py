"""Bad Ansible inventories are reported as FILE:LINE:COL: what is wrong (what was expected).

Connection values (ansible_port, ansible_host...) are kept as given while loading, as Ansible does;
their errors come when a play uses the host, hence `.select("all")` after loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops.errors import ConfigError
from llmops.load.ansible import load

CASES = [
    # INI
    ("inv.ini", "[web:hostz]\nh1\n", "inv.ini:1:6: section [web:hostz] has unknown type 'hostz'"),
    ("inv.ini", "[web servers]\nh1\n", "inv.ini:1:1: invalid section header '[web servers]'"),
    ("inv.ini", "[web]\n  web[1:]\n", "inv.ini:2:3: bad host range in 'web[1:]': the range has no end"),
    ("inv.ini", "[web]\nweb[01:3]\n", "inv.ini:2:1: bad host range in 'web[01:3]': zero-padded begin and end"),
    ("inv.ini", "[web]\nweb-[c:a]\n", "inv.ini:2:1: bad host range in 'web-[c:a]': begin must not come after end"),
    ("inv.ini", "[web]\nweb[1:x]\n", "inv.ini:2:1: bad host range in 'web[1:x]'"),
    ("inv.ini", "[web]\nh[1:1000000]\n", "inv.ini:2:1: bad host range in 'h[1:1000000]': expands to more than"),
    ("inv.ini", "[web]\nh1 ansible_host\n", "inv.ini:2:4: expected key=value, got 'ansible_host'"),
    ("inv.ini", "[web]\nh1\n[web:vars]\njust_a_word\n", "inv.ini:4:1: expected key=value, got 'just_a_word'"),
    ("inv.ini", "[web]\nh1\n[ghost:vars]\nx=1\n", "inv.ini:3:1: section [ghost:vars] is for a group that is never"),
    ("inv.ini", "[site:children]\nweb\nmissing\n[web]\nh1\n", "inv.ini:3:1: section [site:children] names undefined group 'missing'"),
    ("inv.ini", "[a:children]\nb\n[b:children]\na\n", "inv.ini:4:1: cyclic group children: a -> b -> a"),
    ("inv.ini", "[a:children]\na\n[a]\n", "inv.ini:2:1: cyclic group children: a -> a"),
    ("inv.ini", "h1 note=\"unterminated\n", "inv.ini:1:1: cannot split host line: No closing quotation"),
    ("inv.ini", "# a comment\nh1:\n", "inv.ini:2:1: host pattern 'h1:' ends with ':'"),
    ("inv.ini", "h1 x=\"{[1]: 2}\"\n", "inv.ini:1:4: cannot read value '{[1]: 2}'"),
    ("inv.ini", "h1 ansible_port=ssh\n", "inv.ini:1:4: host 'h1': ansible_port: 'ssh' is not a port number"),
    ("inv.ini", "[g]\nh1\n[g:vars]\nansible_port=70000\n", "inv.ini:4:1: host 'h1': ansible_port: 70000 is out of range"),
    ("inv.ini", "h1 ansible_host_key_checking=maybe\n", "inv.ini:1:4: host 'h1': ansible_host_key_checking: 'maybe' is not a boolean"),
    ("inv.ini", "h1 ansible_host='{{ nowhere }}'\n", "inv.ini:1:4: host 'h1': ansible_host: cannot render"),
    ("inv.ini", "[g]\nh1\n[g:vars]\nansible_group_priority=high\n", "inv.ini:4:1: ansible_group_priority 'high' is not an integer"),
    ("inv.ini", "[g]\nh1\n\xff\n", "inv.ini:3:1: not UTF-8 text"),
    # YAML
    ("inv.yml", "all:\n  hosts: [a\n", "inv.yml:3:1: invalid YAML"),
    ("inv.yml", "all:\n  hosts:\n    - h1\n", "inv.yml:3:5: 'hosts' of group 'all' is a list (a mapping)"),
    ("inv.yml", "all:\n  hosts:\n    h1: 5\n", "inv.yml:3:9: variables of host 'h1' are a number"),
    ("inv.yml", "a:\n  children:\n    b:\n      children:\n        a:\n", "inv.yml:3:5: cyclic group children: b -> a -> b"),
    ("inv.yml", "g:\n  vars:\n    ansible_group_priority: high\n", "inv.yml:3:5: ansible_group_priority 'high' is not an integer"),
    ("inv.yml", "all:\n  hosts:\n    42:\n", "inv.yml:3:5: host pattern 42 is not a string"),
    ("inv.yml", "all:\n  children:\n    7: {}\n", "inv.yml:3:5: group name 7 is not a string"),
    ("inv.yml", "all:\n  children:\n    gpu: [a, b]\n", "inv.yml:3:5: 'gpu' is neither a group nor a host"),
    ("inv.yml", "plugin: amazon.aws.aws_ec2\nregions: [x]\n",
     "inv.yml:1:1: ansible-inventory could not read it (an inventory plugin configuration (plugin: amazon.aws.aws_ec2))"),
    ("inv.yml", "- just\n- a list\n", "inv.yml:1:1: YAML inventory is a list, not a mapping"),
    ("inv.yml", "all:\n  vars:\n    v: !vault 5\n", "inv.yml:3:8: invalid YAML: the !vault tag needs a string value"),
    ("inv.yml", "all:\n\thosts: {}\n", "inv.yml:2:1: invalid YAML"),
    ("inv.json", '{"all": {"hosts": ["h1"]}}', "inv.json:1:19: 'hosts' of group 'all' is a list"),
    # TOML
    ("inv.toml", "[all\n", "inv.toml:1:5: not valid TOML"),
    ("inv.toml", "[web]\nchildren = 'db'\n", "inv.toml:1:1: 'children' of group 'web' is a string (a list of group names)"),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[f"{i:02d}-{c[0]}" for i, c in enumerate(CASES)])
def test_bad_inventory_is_located(tmp_path: Path, name: str, text: str, expected: str) -> None:
    source = tmp_path / name
    source.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    with pytest.raises(ConfigError) as caught:
        load(source).select("all")
    message = str(caught.value).replace(str(tmp_path) + os.sep, "")
    assert message.startswith(expected), message


def test_extensionless_file_reports_ini_errors_unless_it_is_a_yaml_mapping(tmp_path: Path) -> None:
    source = tmp_path / "hosts"
    source.write_text("[web]\nh1 broken\n")
    with pytest.raises(ConfigError, match=r"hosts:2:4: expected key=value"):
        load(source)
    source.write_text("all:\n  hosts:\n    - h1\n")
    with pytest.raises(ConfigError, match=r"hosts:3:5: 'hosts' of group 'all' is a list"):
        load(source)


def test_bad_vars_files_are_located(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text("[web]\nh1\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"group_vars/web.yml:1:1: variables file holds a list"):
        load(tmp_path / "inv.ini")
    (tmp_path / "group_vars" / "web.yml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match=r"group_vars/web.yml:2:1: invalid YAML"):
        load(tmp_path / "inv.ini")


def test_missing_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inventory not found"):
        load(tmp_path / "nope.ini")


def test_values_are_kept_as_given_until_a_play_uses_the_host(tmp_path: Path) -> None:
    source = tmp_path / "inv.ini"
    source.write_text("[web]\nh1 ansible_port=@PORT\nh2 ansible_port=2222\n")
    inventory = load(source)
    assert inventory.hosts["h1"].vars["ansible_port"] == "@PORT"
    assert [h.port for h in inventory.select("h2")] == [2222]
    with pytest.raises(ConfigError, match=r"inv.ini:2:4: host 'h1': ansible_port: '@PORT' is not a port number"):
        inventory.select("web")


def test_a_vault_file_is_named_not_read_as_ini(tmp_path: Path) -> None:
    source = tmp_path / "inv.ini"
    source.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162636465\n")
    with pytest.raises(ConfigError, match=r"inv.ini:1:1: encrypted with Ansible Vault and no vault password"):
        load(source)
    (tmp_path / "ok.ini").write_text("[web]\nh1\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162636465\n")
    with pytest.raises(ConfigError, match=r"group_vars/web.yml:1:1: encrypted with Ansible Vault"):
        load(tmp_path / "ok.ini")
