"""What llmops does with an Ansible inventory beyond printing it: Host fields, patterns, implicit localhost."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmops.errors import LlmopsError
from llmops.load.ansible import AnsibleInventory, UnsafeText, load
from llmops.load.ansible_list import to_ansible_host, to_ansible_list, to_graph
from llmops.load.sources import load_inventory

CORPUS = Path(__file__).parent / "corpus"
ROOT = Path(__file__).resolve().parents[2]


def fields(inv: AnsibleInventory, name: str) -> dict:
    h = inv.hosts[name]
    return dict(connection=h.connection, address=h.address, user=h.user, port=h.port, key=h.key,
                host_key_checking=h.host_key_checking, known_hosts=h.known_hosts, python=h.python,
                connect_timeout=h.connect_timeout)


DEFAULTS = dict(connection="ssh", user=None, port=22, key=None, host_key_checking=True, known_hosts=None,
                python="python3", connect_timeout=10.0)


@pytest.mark.parametrize(("name", "expected"), [
    # An inventory's own localhost is a host like any other; here it asks for a local connection.
    ("localhost", dict(DEFAULTS, connection="local", address="127.0.0.1", python="/usr/bin/python3")),
    ("laptop", dict(DEFAULTS, connection="local", address="127.0.0.1")),
    # Listed without ansible_connection: Ansible would ssh to it, and so do we.
    ("127.0.0.1", dict(DEFAULTS, address="127.0.0.1")),
    # The host line's ansible_user beats the group's; the group's interpreter applies.
    ("gpu1", dict(DEFAULTS, address="10.0.0.11", user="bench", port=2200, key="~/.ssh/lab_ed25519",
                  python="/opt/venv/bin/python")),
    ("gpu2", dict(DEFAULTS, address="10.0.0.12", user="gpuadmin", host_key_checking=False, known_hosts="/dev/null",
                  python="/opt/venv/bin/python")),
    ("gpu3", dict(DEFAULTS, address="gpu3", user="gpuadmin", port=2022, host_key_checking=False,
                  python="/opt/venv/bin/python", connect_timeout=30.0)),
    # Legacy ansible_ssh_* names win over the short ones, as in Ansible's ssh plugin.
    ("gpu4", dict(DEFAULTS, address="10.0.0.14", user="legacy", port=2201, known_hosts="~/.ssh/lab_known_hosts",
                  python="/opt/venv/bin/python")),
])
def test_connection_variables_become_host_fields(name: str, expected: dict) -> None:
    inv = load(CORPUS / "11-connection-vars" / "inventory.ini")
    assert fields(inv, name) == expected


def test_groups_and_variables_follow_ansible_precedence() -> None:
    inv = load(CORPUS / "10-precedence-depth" / "inventory.yml")
    h1 = inv.hosts["h1"]
    assert h1.groups == ("all", "aside", "top", "mid", "zside", "leaf")  # by depth, then name
    assert (h1.vars["v"], h1.vars["w"], h1.vars["x"], h1.vars["y"]) == ("leaf", "zside", "zside", "aside")
    inv = load(CORPUS / "07-group-vars-folders" / "inventory.ini")
    assert inv.hosts["h1"].vars["layer"] == "host_vars_h1"
    assert inv.hosts["h3"].vars["layer"] == "group_vars_db"
    assert inv.group_vars["web"]["layer"] == "group_vars_web"  # inventory vars plus group_vars/web


def test_typed_values_and_unsafe_strings() -> None:
    values = load(CORPUS / "05-yaml-typed" / "inventory.yml").hosts["typed_host"].vars
    assert values["b_yes"] is True and values["b_y"] == "y" and values["octal"] == 493
    assert values["no_dot_float"] == "1e3" and values["sexagesimal"] == 90
    assert isinstance(values["not_templated"], UnsafeText) and values["not_templated"] == "{{ raw }}"
    values = load(CORPUS / "01-ini-basic" / "inventory.ini").hosts["typed"].vars
    assert values["lst"] == [1, "two", 3.0] and values["tup"] == [1, 2] and values["sci"] == 1000.0


def test_patterns_and_ranges() -> None:
    inv = load(CORPUS / "02-ini-children" / "inventory.ini")
    assert [h.name for h in inv.select("region_a:!rack2")] == ["n1", "n2"]
    assert [h.name for h in inv.select("rack1:&rack3")] == ["n1"]
    assert inv.group_hosts["site"] == ["n1", "n2", "n3", "early", "n4"]
    ranges = load(CORPUS / "03-ini-ranges" / "inventory.ini")
    assert ranges.group_hosts["mixed"] == ["db8", "db9", "db10"]
    assert ranges.hosts["app2"].port == 2222 and ranges.hosts["::1"].port == 2200


def test_implicit_localhost_only_where_ansible_makes_one() -> None:
    inv = load(CORPUS / "02-ini-children" / "inventory.ini")
    assert "localhost" not in inv.hosts and "localhost" not in [h.name for h in inv.select("all")]
    (local,) = [h for h in inv.select("localhost") if h.name == "localhost"]
    assert local.connection == "local" and local.python == sys.executable
    assert local.vars["level"] == "all"  # it gets the `all` group's variables
    assert "localhost" not in to_ansible_list(inv)["_meta"]["hostvars"]
    assert [h.name for h in inv.select("rack3:localhost")] == ["n4", "n1", "localhost"]
    assert inv.select("localhost:!localhost") == []


def test_templated_connection_variables_are_rendered(tmp_path: Path) -> None:
    source = tmp_path / "hosts.yml"
    source.write_text("all:\n  vars:\n    domain: lab.example\n    ansible_host: '{{ inventory_hostname }}.{{ domain }}'\n"
                      "  hosts:\n    gpu1:\n    gpu2:\n      ansible_connection: community.docker.docker\n")
    inv = load(source)
    assert inv.hosts["gpu1"].address == "gpu1.lab.example"
    assert inv.hosts["gpu1"].vars["ansible_host"] == "{{ inventory_hostname }}.{{ domain }}"  # as Ansible prints it
    assert inv.hosts["gpu2"].connection == "community.docker.docker"  # kept by name: not ours to run


def test_load_inventory_dispatches_ansible_sources_here() -> None:
    for source in ("03-ini-ranges/inventory.ini", "09-directory-source/inventory", "13-ini-no-extension/inventory",
                   "06-yaml-nested/inventory.yaml"):
        assert isinstance(load_inventory(CORPUS / source), AnsibleInventory), source


def test_llmops_own_inventories_print_in_ansible_shape_too() -> None:
    inv = load_inventory(ROOT / "inventory" / "lab.yml")
    listed = to_ansible_list(inv)
    assert listed["all"]["children"] == ["ungrouped", "strixhalo"]
    assert listed["strixhalo"] == {"hosts": ["framework"]}
    assert listed["_meta"]["hostvars"]["framework"]["gpu_target"] == "gfx1151"
    assert to_graph(inv) == "@all:\n  |--@ungrouped:\n  |--@strixhalo:\n  |  |--framework"


def test_graph_of_one_group_and_unknown_names() -> None:
    inv = load(CORPUS / "02-ini-children" / "inventory.ini")
    assert to_graph(inv, "region_b") == "@region_b:\n  |--@rack3:\n  |  |--n4\n  |  |--n1"
    with pytest.raises(LlmopsError, match="no group named 'nope'"):
        to_graph(inv, "nope")
    with pytest.raises(LlmopsError, match="no host named 'nope'"):
        to_ansible_host(inv, "nope")
