"""`llmops apply` with several `-i` and host lists (the emulator stands in for the server): the
sources merge as `ansible-inventory -i A -i B ...` merges them, the run directory keeps a scrubbed
copy of every source under inventories/NN/ in order, and --replay / --resume read them back to
the same plan. Old run directories (one inventory.yml or inventory/ copy) still replay."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sshd import free_port

from llmops.cli import main
from llmops.load.ansible_list import dumps, to_ansible_list
from llmops.load.sources import load_inventory
from llmops.record.inventories import quote_yaml_masks

from .test_ansible_sources import ansible_env, ansible_inventory  # noqa: F401 - a fixture

PLAYBOOK = str(Path(__file__).resolve().parents[1] / "playbooks" / "faults.yml")
PASSWORD = "hunter2-not-for-logs"


def make_sources(root: Path) -> list[str]:
    """A: INI with group_vars/ beside it (a password in plain YAML); B: YAML that overrides a var of
    A's host; then a host list. Only box1 is local, so the run uses -l box1."""
    a = root / "a"
    (a / "group_vars").mkdir(parents=True)
    (a / "lab.ini").write_text("[lab]\nbox1 ansible_connection=local max_tokens=4\nbox2 ansible_host=127.0.0.1\n"
                               "[lab:vars]\nlevels=[1]\n")
    (a / "group_vars" / "lab.yml").write_text(f"db_password: {PASSWORD}\nnote: from a\n")
    b = root / "b"
    b.mkdir()
    (b / "more.yml").write_text("all:\n  children:\n    lab:\n      hosts:\n        box1:\n          max_tokens: 6\n"
                                "    extra:\n      hosts:\n        box3:\n")
    return [str(a / "lab.ini"), str(b / "more.yml"), "listed1,listed2:2200,"]


def apply(*args: str) -> None:
    result = CliRunner().invoke(main, ["apply", *args, "--reports", "md"])  # the HTML is tested elsewhere
    assert result.exit_code == 0, result.output


def with_templates(run_dir: Path) -> Path:
    """A run directory from before templates/ was kept there: --replay looks for the playbook's
    own templates (faults.yml's emulator.j2) beside its copy, so the test puts them there."""
    shutil.copytree(Path(PLAYBOOK).parent / "templates", run_dir / "templates", dirs_exist_ok=True)
    return run_dir


def cells(run_dir: Path) -> list[dict]:
    """plan.json's cells without `origin` (it names the playbook file the cell came from)."""
    plan = json.loads((run_dir / "plan.json").read_text())
    return [{k: v for k, v in cell.items() if k != "origin"} for cell in plan["cells"]]


def test_several_sources_apply_record_and_replay(tmp_path: Path, ansible_env: dict) -> None:  # noqa: F811
    sources = make_sources(tmp_path)
    inventory_args = [a for s in sources for a in ("-i", s)]
    # The merge is Ansible's (oracle): later sources win for the same host, groups merged.
    assert dumps(to_ansible_list(load_inventory(sources))) == ansible_inventory(*inventory_args, "--list",
                                                                                env=ansible_env)
    run = tmp_path / "run"
    extra = ["-e", f"port={free_port()}", "-e", f"emu_python={sys.executable}"]
    apply(PLAYBOOK, *inventory_args, "-l", "box1", "-t", "emulator", "--run-dir", str(run), *extra)

    (cell,) = cells(run)
    assert cell["host"] == "box1" and cell["benchmark"]["max_tokens"] == 6  # B's value won over A's
    meta = json.loads((run / "meta.json").read_text())
    assert [(r["kind"], r["copy"]) for r in meta["inventory_sources"]] == [
        ("file", "inventories/01/lab.ini"), ("file", "inventories/02/more.yml"),
        ("host list", "inventories/03/host_list")]
    assert meta["inventory_sources"][2]["source"] == sources[2]
    copied = run / "inventories" / "01" / "group_vars" / "lab.yml"
    assert PASSWORD not in copied.read_text()
    assert yaml.safe_load(copied.read_text()) == {"db_password": "***", "note": "from a"}  # parses, masked
    for path in run.rglob("*"):
        assert not path.is_file() or PASSWORD not in path.read_text(errors="replace"), path

    # The copies read back in order give the same inventory as the originals (bar the mask)...
    copies = [str(run / r["copy"]) for r in meta["inventory_sources"][:2]] + [sources[2]]
    originals, again = to_ansible_list(load_inventory(sources)), to_ansible_list(load_inventory(copies))
    for host in ("box1", "box2"):  # the lab group's password
        assert again["_meta"]["hostvars"][host].pop("db_password") == "***"
        assert originals["_meta"]["hostvars"][host].pop("db_password") == PASSWORD
    assert again == originals

    # ...and --replay makes the same plan from the run directory alone.
    replayed = tmp_path / "replayed"
    apply("--replay", str(run), "--run-dir", str(replayed))
    assert cells(replayed) == cells(run)
    replay_meta = json.loads((replayed / "meta.json").read_text())
    assert [r["kind"] for r in replay_meta["inventory_sources"]] == ["file", "file", "host list"]

    # --resume with the originals gone takes the copies, and their plan must equal the run's.
    shutil.rmtree(tmp_path / "a")
    shutil.rmtree(tmp_path / "b")
    apply("--resume", str(run))


def test_a_single_folder_source_is_copied_whole_and_replays(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    (folder / "host_vars").mkdir(parents=True)
    (folder / "hosts.yml").write_text("all:\n  hosts:\n    box1:\n      ansible_connection: local\n")
    (folder / "host_vars" / "box1.yml").write_text(f"levels: [1]\nmax_tokens: 5\napi_token: {PASSWORD}\n")
    # The playbook with its own templates/ in a folder of the test's, gone before the replay.
    own = tmp_path / "pb"
    shutil.copytree(Path(PLAYBOOK).parent / "templates", own / "templates")
    playbook = own / Path(PLAYBOOK).name
    shutil.copy(PLAYBOOK, playbook)
    run = tmp_path / "run"
    apply(str(playbook), "-i", str(folder), "-t", "emulator", "--run-dir", str(run),
          "-e", f"port={free_port()}", "-e", f"emu_python={sys.executable}")
    meta = json.loads((run / "meta.json").read_text())
    assert [(r["kind"], r["copy"]) for r in meta["inventory_sources"]] == [("folder", "inventories/01")]
    copied = (run / "inventories" / "01" / "host_vars" / "box1.yml").read_text()
    assert yaml.safe_load(copied)["api_token"] == "***"
    assert "emulator.j2" in meta["templates"]
    assert (run / "templates" / "emulator.j2").read_bytes() == (own / "templates" / "emulator.j2").read_bytes()
    shutil.rmtree(own)
    replayed = tmp_path / "replayed"
    apply("--replay", str(run), "--run-dir", str(replayed))
    assert cells(replayed) == cells(run) and cells(run)[0]["benchmark"]["max_tokens"] == 5


@pytest.mark.parametrize("layout", ["inventory.yml", "inventory"])
def test_old_run_dirs_with_one_inventory_copy_still_replay(tmp_path: Path, layout: str) -> None:
    """A run directory as llmops wrote it before inventories/: meta.json's inventory_path and
    one copy (a file as inventory.yml, a folder as inventory/)."""
    run = tmp_path / "old"
    run.mkdir()
    shutil.copy(PLAYBOOK, run / "playbook.yml")
    text = "all:\n  hosts:\n    oldbox:\n      ansible_connection: local\n      max_tokens: 7\n"
    if layout == "inventory":
        (run / "inventory").mkdir()
        (run / "inventory" / "hosts.yml").write_text(text)
    else:
        (run / "inventory.yml").write_text(text)
    (run / "meta.json").write_text(json.dumps({
        "inventory_path": str(tmp_path / "gone"), "selection": {
            "tags": "emulator", "extra_vars": {"port": free_port(), "emu_python": sys.executable, "levels": [1]}}}))
    replayed = tmp_path / "replayed"
    apply("--replay", str(with_templates(run)), "--run-dir", str(replayed))
    (cell,) = cells(replayed)
    assert (cell["host"], cell["benchmark"]["max_tokens"]) == ("oldbox", 7)


@pytest.mark.parametrize(("text", "expected"), [
    ("password: ***\n", {"password": "***"}),
    ("password: ***  # masked\n", {"password": "***"}),
    ("password: ***tail\n", {"password": "***tail"}),
    ("url: http://u:***@h\n", {"url": "http://u:***@h"}),
    ("quoted: \"***\"\nsingle: '***'\n", {"quoted": "***", "single": "***"}),
    ("- ***\n- [***, x]\n- {k: ***}\n", ["***", ["***", "x"], {"k": "***"}]),
    ("hosts:\n  h1:\n    ansible_password: ***\n", {"hosts": {"h1": {"ansible_password": "***"}}}),
    ("a: !!str ***\n", {"a": "***"}),
])
def test_masks_in_yaml_copies_stay_strings_in_place(text: str, expected: object) -> None:
    """A bare *** starts a YAML alias (`password: ***` does not load); the copy quotes it."""
    assert yaml.safe_load(quote_yaml_masks(text)) == expected


def test_a_masked_secret_tagged_value_in_an_llmops_inventory_copy_still_loads(tmp_path: Path) -> None:
    """llmops' own `key: !secret VALUE` masked in the copy: `!secret ***` would be a tag on an alias."""
    from llmops.load.inventory import load_llmops_inventory

    copy = tmp_path / "inventory.yml"
    copy.write_text(quote_yaml_masks("hosts:\n  h1:\n    vars:\n      api_key: !secret ***\n"))
    assert load_llmops_inventory(copy).hosts["h1"].vars["api_key"] == "***"


@pytest.mark.parametrize("host_list", ["localhost,", "localhost,127.0.0.1:2201,", "h1,h2,"])
def test_host_lists_alone_read_as_ansible_reads_them(host_list: str, ansible_env: dict) -> None:  # noqa: F811
    """`-i localhost,` is a host named localhost reached over ssh, as in Ansible (only the implicit
    localhost, made when no inventory has one, is local)."""
    inventory = load_inventory([host_list])
    assert dumps(to_ansible_list(inventory)) == ansible_inventory("-i", host_list, "--list", env=ansible_env)
    if host_list.startswith("localhost"):
        assert inventory.hosts["localhost"].connection == "ssh"
