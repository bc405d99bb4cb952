"""Mutated valid playbooks and inventories fed to `llmops check` (issue 14).

Whatever the bytes, `check` must answer with exit 0 (still valid) or exit 2 with a located
message (FILE:LINE:COL), never a traceback or an internal error, and within the bounds of the
bad-input corpus. The examples come from hypothesis with a fixed derandomised seed, so a failure
reproduces; LLMOPS_PROPERTY_EXAMPLES raises the count for a long soak, e.g.

    LLMOPS_PROPERTY_EXAMPLES=2000 pytest tests/test_property_check.py -p no:hypothesispytest

Most examples run in-process (click's CliRunner: fast, and CPU time is measured per example);
a sample of each kind also runs in a process of its own (tests/cli_forks.py `measured`, as the
bad-input corpus does), whose exact CPU time and peak RSS the kernel reports.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from cli_forks import measured
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("LLMOPS_PROPERTY_EXAMPLES", "60"))
CPU_LIMIT_S = 2.0
RSS_LIMIT_MB = 200.0

PLAYBOOKS = [ROOT / "playbooks" / "quickstart.yml", ROOT / "playbooks" / "compare.yml",
             ROOT / "tests" / "playbooks" / "llama.yml", ROOT / "tests" / "playbooks" / "launchers.yml"]
INVENTORIES = [ROOT / "inventory" / "local.yml", ROOT / "inventory" / "lab.yml",
               ROOT / "tests" / "inventory" / "corpus" / "01-ini-basic" / "inventory.ini",
               ROOT / "tests" / "inventory" / "corpus" / "03-ini-ranges" / "inventory.ini"]
LOCAL = ROOT / "inventory" / "local.yml"
QUICKSTART = ROOT / "playbooks" / "quickstart.yml"

# What a mutation inserts: YAML and INI syntax, Jinja, numbers that overflow, escapes that make
# NULs, unicode line separators, and plain text.
SNIPPETS = ["[", "]", "{", "}", ":", ": ", "- ", ",", "&a ", "*a", "<<: *a", "!!python/object ", "!secret ",
            "|", ">", "'", '"', "#", "\n", "\t", "  ", "%", "@", "`", "{{ ", " }}", "{{ 7 ** 99999 }}",
            "{% for x in range(99999999) %}", "[1:99999999]", "1e400", ".inf", "-.nan", "0x", "-1",
            "99999999999999999999", "true", "null", "~", "\\0", "\"\\x00\"", "\u2028", "\ufeff", "é", "..",
            "/", "--privileged", "=", "ansible_host=", "port: true", "\r\n", "\x00"]
SCALARS = ["true", "null", "1e400", ".inf", "-1", "0", "''", "[]", "{}", "..", "-x", "\"\\0\"", "9" * 30,
           "{{ undefined_var }}", "[1, [2, [3]]]", "*missing"]


@st.composite
def mutated(draw: st.DrawFn, sources: list[Path]) -> tuple[str, str]:
    source = draw(st.sampled_from(sources))
    text = source.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        op = draw(st.sampled_from(["insert", "delete", "duplicate", "swap", "scalar", "indent", "nest"]))
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(SNIPPETS)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)):]
        elif op in ("duplicate", "swap", "indent") and lines:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if op == "duplicate":
                lines.insert(i, lines[j])
            elif op == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = draw(st.sampled_from(["", "  ", "    ", "\t"])) + lines[i].lstrip(" ")
            text = "\n".join(lines)
        elif op == "scalar":
            values = list(re.finditer(r":[ ]+([^\s#][^\n#]*)", text))
            if values:
                m = draw(st.sampled_from(values))
                text = text[:m.start(1)] + draw(st.sampled_from(SCALARS)) + text[m.end(1):]
        elif op == "nest":
            depth = draw(st.integers(10, 400))
            text = text[:at] + "[" * depth + "]" * draw(st.integers(0, depth)) + text[at:]
    return source.suffix, text


LOCATED = re.compile(r"^\S[^\n]*:\d+:\d+: ", re.M)


def check_in_process(tmp: Path, playbook: str, inventory: str, pb_suffix: str = ".yml",
                     inv_suffix: str = ".yml") -> tuple[int, str, float]:
    pb = tmp / f"playbook{pb_suffix}"
    inv = tmp / f"inventory{inv_suffix}"
    pb.write_bytes(playbook.encode("utf-8", "surrogatepass"))
    inv.write_bytes(inventory.encode("utf-8", "surrogatepass"))
    start = time.process_time()
    result = CliRunner().invoke(main, ["check", str(pb), "-i", str(inv)])
    cpu = time.process_time() - start
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"exception escaped: {result.exception!r}\n{result.output}")
    return result.exit_code, result.output, cpu


def assert_answer(code: int, output: str, cpu: float) -> None:
    assert "Traceback" not in output, output
    assert "internal error" not in output and "too deeply nested or too large" not in output, output
    assert code in (0, 2), (code, output)
    if code == 2:
        assert LOCATED.search(output), output
    assert cpu < CPU_LIMIT_S, (cpu, output[:500])


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutated(PLAYBOOKS))
def test_mutated_playbooks(tmp_path: Path, case: tuple[str, str]) -> None:
    suffix, text = case
    assert_answer(*check_in_process(tmp_path, text, LOCAL.read_text(), pb_suffix=suffix))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutated(INVENTORIES))
def test_mutated_inventories(tmp_path: Path, case: tuple[str, str]) -> None:
    suffix, text = case
    assert_answer(*check_in_process(tmp_path, QUICKSTART.read_text(), text, inv_suffix=suffix))


# A few of each in their own process: the peak RSS of a child is exact, an in-process one is not.
SUBPROCESS_EXAMPLES = int(os.environ.get("LLMOPS_PROPERTY_SUBPROCESS_EXAMPLES", "4"))


@pytest.mark.parametrize("kind", ["playbook", "inventory"])
def test_mutations_stay_within_memory_and_cpu_in_a_child(tmp_path: Path, kind: str) -> None:
    strategy = mutated(PLAYBOOKS if kind == "playbook" else INVENTORIES)
    seen = []

    @settings(max_examples=SUBPROCESS_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(strategy)
    def one(case: tuple[str, str]) -> None:
        suffix, text = case
        pb = tmp_path / f"p{suffix if kind == 'playbook' else '.yml'}"
        inv = tmp_path / f"i{suffix if kind == 'inventory' else '.yml'}"
        pb.write_bytes((text if kind == "playbook" else QUICKSTART.read_text()).encode("utf-8", "surrogatepass"))
        inv.write_bytes((text if kind == "inventory" else LOCAL.read_text()).encode("utf-8", "surrogatepass"))
        got = measured(["check", str(pb), "-i", str(inv)], ROOT, tmp_path / "report.json")
        seen.append(got)
        assert got["code"] in (0, 2), got
        assert_answer(got["code"], got["stdout"] + got["stderr"], got["cpu_s"])
        assert got["max_rss_mb"] < RSS_LIMIT_MB, got

    one()
    assert seen
