"""HTTPS through ssl.MemoryBIO: the same client, the same counts, the kernel's read times."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmops.bench.emulator import EmulatorProcess
from llmops.cli_bench import bench

from .conftest import run_bench, timing_retries


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    emu = EmulatorProcess({"default": {"ttft": 0.03, "gap": 0.002, "output_tokens": 20}}, tls=(str(cert), str(key)))
    yield emu, cert
    emu.stop()


@timing_retries
def test_https_stream_is_read_and_counted(tls_emulator: tuple[EmulatorProcess, Path]) -> None:
    emu, cert = tls_emulator
    context = ssl.create_default_context(cafile=str(cert))
    run = run_bench(emu.url, concurrency=[1, 4], max_tokens=20, ssl_context=context, preflight=True)
    for r in run.measured():
        assert r.ok, r.error
        assert r.completion_tokens == 20 == r.streamed_tokens and r.tokens_source == "usage"
        assert r.ttft is not None and 0.03 <= r.ttft < 0.06
    assert run.levels[1]["itl_p50_ms"] == pytest.approx(2.0, abs=1.0)


def test_https_certificate_is_checked_unless_insecure(tls_emulator: tuple[EmulatorProcess, Path]) -> None:
    emu, _ = tls_emulator
    run = run_bench(emu.url, concurrency=[1], max_tokens=4)  # the default context does not trust it
    (group,) = run.levels[0]["errors"]
    assert group["kind"] == "connect" and "CERTIFICATE_VERIFY_FAILED" in group["example"]
    result = CliRunner().invoke(bench, [emu.url, "-m", "emulated", "-c", "2", "--max-tokens", "4", "--insecure"])
    assert result.exit_code == 0, result.output
    assert "100.00%" in result.stdout
