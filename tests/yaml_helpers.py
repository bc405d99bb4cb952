"""Write YAML files for tests (ruamel, the same library llmops reads them with)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML


def dump(data: Any, path: Path) -> Path:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    with open(path, "w") as f:
        yaml.dump(data, f)
    return path
