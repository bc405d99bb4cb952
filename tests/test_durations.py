"""Every duration refuses YAML's .nan and .inf: either would silently switch a timeout off (nan
compares false with everything, inf never runs out), the dead-man switch's lease included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml_helpers
from conftest import llmops

WHERE = re.compile(r"^(\S+):(\d+):(\d+): ", re.M)


def playbook(tmp_path: Path, backend: str = "", benchmark: str = "", telemetry: str = "") -> Path:
    path = tmp_path / "pb.yml"
    path.write_text(
        "- hosts: all\n"
        "  backends:\n"
        "    - name: b\n"
        "      kind: llama.cpp\n"
        "      model: /m.gguf\n"
        "      binary: /bin/true\n"
        "      port: 18999\n"
        f"{backend}"
        "  benchmark:\n"
        "    concurrency: [1]\n"
        f"{benchmark}"
        f"{telemetry}"
    )
    return path


CASES = {
    "ready_timeout-nan": ("      ready_timeout: .nan\n", "", "", 8),
    "stop_timeout-inf": ("      stop_timeout: .inf\n", "", "", 8),
    "request-timeout-inf": ("", "    timeout: .inf\n", "", 10),
    "duration-nan": ("", "    duration: .NaN\n", "", 10),
    "sample_interval-nan": ("", "    sample_interval: .nan\n", "", 10),
    "slo-inf": ("", "    slo: {ttft_ms: .inf}\n", "", 10),
    "tool_timeout-inf": ("", "", "  telemetry:\n    tool_timeout: .inf\n", 11),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_non_finite_duration_refused(name: str, tmp_path: Path) -> None:
    backend, benchmark, telemetry, line = CASES[name]
    proc = llmops("apply", str(playbook(tmp_path, backend, benchmark, telemetry)), "--check")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    found = WHERE.search(proc.stderr)
    assert found, proc.stderr
    assert int(found.group(2)) == line and "finite" in proc.stderr, proc.stderr
    assert "nothing was started" in proc.stderr


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "0"])
def test_lease_timeout_must_be_finite(value: str, tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(f"hosts:\n  localhost:\n    connection: local\n    vars:\n      llmops_lease_timeout: {value}\n")
    proc = llmops("apply", str(playbook(tmp_path)), "-i", str(inventory), "--check")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert WHERE.search(proc.stderr) and "llmops_lease_timeout must be a positive, finite number" in proc.stderr


def test_connect_timeout_must_be_finite(tmp_path: Path) -> None:
    inventory = yaml_helpers.dump({"hosts": {"h": {"host": "127.0.0.1", "connect_timeout": float("inf")}}},
                                  tmp_path / "inv.yml")
    proc = llmops("apply", str(playbook(tmp_path)), "-i", str(inventory), "--check")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert WHERE.search(proc.stderr) and "finite" in proc.stderr, proc.stderr
