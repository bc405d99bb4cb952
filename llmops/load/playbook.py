"""Playbooks: a list of plays (or one play as a mapping), each naming hosts, backends and a benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmops.errors import ConfigError, Problem
from llmops.load import yamlsrc
from llmops.load.schema import Play
from llmops.load.validate import validate
from llmops.load.yamlsrc import Located, YamlPath


@dataclass
class Playbook:
    path: Path
    located: Located
    plays: list[Play]
    play_paths: list[YamlPath]

    @property
    def directory(self) -> Path:
        return self.path.parent


def load_playbook(path: str | Path) -> Playbook:
    p = Path(path)
    located = yamlsrc.load_file(p)
    data = located.data
    if data is None:
        raise ConfigError(Problem(str(p), 1, 1, "playbook is empty", "a list of plays"))
    if isinstance(data, dict):
        paths: list[YamlPath] = [()]
    elif isinstance(data, list):
        if not data:
            raise ConfigError(located.problem((), "playbook has no plays", "a list of plays"))
        paths = [(i,) for i in range(len(data))]
    else:
        raise ConfigError(located.problem((), "playbook must be a list of plays (or one play)",
                                          "a YAML list of mappings with hosts/backends/benchmark"))
    plays = []
    problems: list[Problem] = []
    for path_ in paths:
        node = located.data if path_ == () else located.data[path_[0]]
        if not isinstance(node, dict):
            problems.append(located.problem(path_, "a play must be a mapping", "keys name, hosts, backends, benchmark"))
            continue
        try:
            plays.append(validate(Play, located, path_, label=f"plays[{path_[0]}]" if path_ else "play"))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return Playbook(path=p, located=located, plays=plays, play_paths=paths)
