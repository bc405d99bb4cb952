"""Rebuild this corpus from an unpacked ansible-core sdist and the installed ansible-core (maintainers only).

    pip download --no-deps --no-binary :all: 'ansible-core>=2.19,<2.20' && tar xzf ansible_core-*.tar.gz
    python tests/inventory/ansible_corpus/collect.py ansible_core-2.19.*/

Copies inventory *data* files (never code) into one folder per input, with the group_vars/ and
host_vars/ folders that sit beside them, and writes MANIFEST.json (where each came from).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = re.compile(r"(^inventory|^hosts$|^hosts\.|\.inventory$|inventory.*\.(yml|ini|toml|json)$)", re.I)
# Inventory inputs under targets whose names do not say so (plugin configs, data files of the tests).
EXTRA = ["ansible-inventory/files/valid_sample.yml", "ansible-inventory/files/complex.ini",
         "ansible-inventory/files/valid_sample.toml", "ansible-inventory/files/unicode.yml",
         "ansible-inventory/with_untrusted.yml", "inventory/test_empty.yml", "inventory/inv_with_int.yml",
         "inventory/inv_with_host_vars.yml", "inventory_constructed/invs/1/one.yml",
         "inventory_constructed/constructed.yml", "inventory_constructed/keyed_group_trailing_separator.yml",
         "inventory_constructed/keyed_group_list_default_value.yml",
         "inventory_constructed/keyed_group_str_default_value.yml", "inventory_constructed/keyed_group_default_value.yml",
         "inventory_constructed/no_leading_separator_constructed.yml", "inventory_generator/generator.yml",
         "inventory_generator/parent_without_name.yml", "inventory_yaml/success.json", "inventory_yaml/empty.json",
         "inventory_yaml/test_int_hostname.yml", "plugin_config_for_inventory/config_with_parameter.yml",
         "plugin_config_for_inventory/config_without_parameter.yml"]
SKIP_DIRS = ("/tasks/", "/library/", "/plugins/", "/roles/", "/templates/", "/meta/")


def examples(plugin: Path) -> list[str]:
    for node in ast.parse(plugin.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXAMPLES":
            text = node.value.value
            if plugin.stem == "toml":  # several examples, each after a "# Example N" line
                return [part for part in re.split(r"^# Example \d+\n", text, flags=re.M)[1:]]
            return [text]
    return []


def main(sdist: Path) -> None:
    targets = sdist / "test" / "integration" / "targets"
    found: list[Path] = []
    for path in sorted(targets.rglob("*")):
        rel = str(path.relative_to(targets))
        if path.is_file() and NAME.search(path.name) and not any(d in "/" + rel for d in SKIP_DIRS) \
                and path.suffix not in (".py", ".sh", ".j2") and not (os.access(path, os.X_OK)
                                                                     and path.read_bytes().startswith(b"#!")):
            found.append(path)
    found += [targets / e for e in EXTRA if targets / e not in found]
    manifest: dict[str, dict[str, str]] = {}
    for path in found:
        rel = path.relative_to(targets)
        case = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(rel).replace("/", "--"))
        folder = HERE / case
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        shutil.copy2(path, folder / path.name)
        for side in ("group_vars", "host_vars"):
            if (path.parent / side).is_dir():
                shutil.copytree(path.parent / side, folder / side)
        manifest[case] = {"input": path.name, "from": f"ansible-core {sdist.name}: test/integration/targets/{rel}"}
    import ansible.plugins.inventory as plugins  # the installed ansible-core, for the EXAMPLES texts

    for plugin in ("ini", "yaml", "toml"):
        for i, text in enumerate(examples(Path(plugins.__file__).parent / f"{plugin}.py"), 1):
            case = f"EXAMPLES--{plugin}-{i}"
            folder = HERE / case
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            name = {"ini": "inventory", "yaml": "inventory.yml", "toml": "inventory.toml"}[plugin]
            (folder / name).write_text(text)
            manifest[case] = {"input": name, "from": f"EXAMPLES of lib/ansible/plugins/inventory/{plugin}.py "
                                                      f"(installed ansible-core), example {i}"}
    (HERE / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(len(manifest), "inputs")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
