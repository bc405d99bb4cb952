"""Tasks with one right answer that llmops makes itself (nothing is downloaded): arithmetic,
copying, sorting and short lookups from the prompt. Made from a seed, so every variant and every
run gets the same tasks; scored exactly. Pure.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

KINDS = ("arithmetic", "copy", "sort", "lookup")
_WORDS = ("apple", "river", "stone", "cloud", "maple", "tiger", "ocean", "pearl", "amber", "cedar",
          "delta", "ember", "frost", "grove", "harbor", "iris", "jade", "koala", "lemon", "mango")


@dataclass(frozen=True)
class Task:
    kind: str
    prompt: str
    answer: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "prompt": self.prompt, "answer": self.answer}


def make_tasks(count: int, seed: int = 0) -> list[Task]:
    """`count` tasks, the kinds in turn, all from `seed`."""
    rng = random.Random(seed)
    tasks = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        tasks.append(_MAKERS[kind](rng))
    return tasks


def _arithmetic(rng: random.Random) -> Task:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    op = rng.choice("+-*")
    value = a + b if op == "+" else a - b if op == "-" else a * b
    return Task("arithmetic", f"Compute {a} {op} {b}. Answer with the number only.\nAnswer:", str(value))


def _copy(rng: random.Random) -> Task:
    text = " ".join(rng.sample(_WORDS, 4))
    return Task("copy", f"Repeat exactly: {text}\nAnswer:", text)


def _sort(rng: random.Random) -> Task:
    numbers = rng.sample(range(1, 100), 5)
    shown = ", ".join(map(str, numbers))
    return Task("sort", f"Sort ascending: {shown}\nAnswer:", ", ".join(map(str, sorted(numbers))))


def _lookup(rng: random.Random) -> Task:
    keys = rng.sample(_WORDS, 4)
    values = [rng.randint(100, 999) for _ in keys]
    table = "; ".join(f"{k}={v}" for k, v in zip(keys, values, strict=False))
    pick = rng.randrange(len(keys))
    return Task("lookup", f"Given {table}. What is {keys[pick]}? Answer with the number only.\nAnswer:",
                str(values[pick]))


_MAKERS = {"arithmetic": _arithmetic, "copy": _copy, "sort": _sort, "lookup": _lookup}


def normalise(text: str) -> str:
    """The answer as the model gave it: its first non-empty line, outer whitespace and one trailing
    full stop dropped, inner runs of whitespace made one space. Nothing else is forgiven."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            line = re.sub(r"\s+", " ", line)
            return line[:-1].rstrip() if line.endswith(".") else line
    return ""


def is_correct(task: Task, completion: str) -> bool:
    return normalise(completion) == task.answer


def score(tasks: list[Task], completions: list[str]) -> dict:
    """Share correct overall and per kind."""
    if len(tasks) != len(completions):
        raise ValueError("one completion per task")
    per_kind: dict[str, list[bool]] = {}
    for task, text in zip(tasks, completions, strict=False):
        per_kind.setdefault(task.kind, []).append(is_correct(task, text))
    flat = [ok for oks in per_kind.values() for ok in oks]
    return {"tasks": len(flat), "correct": sum(flat), "accuracy": (sum(flat) / len(flat)) if flat else None,
            "per_kind": {k: sum(v) / len(v) for k, v in per_kind.items()}}
