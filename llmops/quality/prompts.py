"""The prompt set for agreement: shipped with llmops (fixed, so numbers compare across runs and
machines), plus the user's own file. Plain completion prompts: no chat template in between, so a
difference is the model's, not the template's (the template shows up in the settings diff).
"""

from __future__ import annotations

import json
from pathlib import Path

from llmops.errors import ConfigError, Problem

SHIPPED = (
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    ",
    "The three primary colours are",
    "Water boils at a temperature of",
    "To make a cup of tea, first",
    "The quick brown fox",
    "In 1969, the first humans to walk on the Moon",
    "A list of prime numbers: 2, 3, 5, 7,",
    "SELECT name, age FROM users WHERE",
    "Dear Sir or Madam,\nI am writing to",
    "The most important rule of cooking rice is",
    "Photosynthesis is the process by which",
    "Q: What is the largest planet in the Solar System?\nA:",
    "Translate to German: Good morning, how are you?\nGerman:",
    "The recipe calls for two cups of flour,",
)


def load_user_prompts(path: str) -> list[str]:
    """One prompt per line (blank lines skipped), or JSON Lines with a "prompt" string per line
    (for prompts that hold newlines). Errors name FILE:LINE:COL."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(path, 1, 1, f"cannot read the prompt file: {exc.strerror}",
                                   "a readable text file")]) from None
    out: list[str] = []
    problems: list[Problem] = []
    jsonl = path.endswith(".jsonl")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if not jsonl:
            out.append(line)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(path, number, exc.colno, f"not JSON: {exc.msg}", '{"prompt": "..."}'))
            continue
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            problems.append(Problem(path, number, 1, "no \"prompt\" string", '{"prompt": "..."}'))
            continue
        out.append(record["prompt"])
    if not out and not problems:
        problems.append(Problem(path, 1, 1, "the prompt file holds no prompt", "one prompt per line"))
    if problems:
        raise ConfigError(problems)
    return out
