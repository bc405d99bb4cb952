"""`llmops bench URL ...`: formats, the error summary, the API key, bad options."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmops.bench.emulator import EmulatorProcess
from llmops.cli_bench import bench, endpoints, parse_slo

CONTRACT = ["concurrency", "requests", "failed", "success_rate", "gen_tps", "prompt_tps", "ttft_min_s", "ttft_max_s",
            "total_s", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_ms", "itl_p50_ms", "e2e_p50_s",
            "steady_gen_tps"]


def invoke(*args: str) -> CliRunner.invoke:
    return CliRunner().invoke(bench, list(args), catch_exceptions=False)


def test_json_has_the_contract_fields_and_no_nan(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.01, "gap": 0.001, "output_tokens": 8}})
    result = invoke(emulator.url, "-c", "1,2", "--max-tokens", "8", "--format", "json", "--slo", "ttft=500ms,tpot=50ms")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert doc["model"] == "emulated"  # found through GET /v1/models
    levels = doc["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 2]
    for lv in levels:
        for key in CONTRACT + ["goodput_rps"]:
            assert key in lv, key
        assert lv["requests"] == lv["concurrency"] and lv["failed"] == 0 and lv["goodput_rps"] > 0


def test_json_when_everything_fails_is_still_strict_json(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"failure": "http_503"}})
    result = invoke(emulator.url, "-c", "2", "--format", "json")
    assert result.exit_code == 1  # nothing succeeded
    doc = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    (lv,) = doc["levels"]
    assert lv["success_rate"] == 0.0 and lv["ttft_min_s"] is None and lv["gen_tps"] == 0.0
    assert lv["errors"][0]["kind"] == "http_503" and lv["errors"][0]["count"] == 2


def test_table_is_llmapibenchmark_compatible_with_an_error_summary(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.01, "gap": 0.001, "output_tokens": 8},
                        "rules": [{"indices": [1, 3, 5, 7, 9, 11], "set": {"failure": "http_503"}}]})  # 0: the preflight
    result = invoke(emulator.url, "-m", "emulated", "-c", "16", "--max-tokens", "8")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "| Conc | Gen TPS | Prompt TPS | Min TTFT(s) | Max TTFT(s) | Success | Total(s) |" in out
    assert "62.50%" in out  # 10 of 16
    line = next(line for line in out.splitlines() if " x http_503" in line)
    assert line.strip().startswith("c=16: 6 x http_503 at 0.0") and "HTTP 503 Service Unavailable" in line
    assert "emulated failure" in line


def test_csv_per_level_and_per_request(emulator: EmulatorProcess, tmp_path: Path) -> None:
    emulator.configure({"default": {"ttft": 0.01, "gap": 0.001, "output_tokens": 4}})
    result = invoke(emulator.url, "-c", "1,3", "--max-tokens", "4", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["concurrency"] for r in rows] == ["1", "3"] and all(r["failed"] == "0" for r in rows)
    saved = tmp_path / "requests.jsonl"
    result = invoke(emulator.url, "-c", "3", "--max-tokens", "4", "--csv-requests", "--warmup", "1",
                    "--save-requests", str(saved))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 4 and {r["phase"] for r in rows} == {"warmup", "measure"}
    assert all(float(r["ttft"]) > 0 and r["tokens_source"] == "usage" for r in rows)
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert len(lines) == 4 and all(line["completion_tokens"] == 4 for line in lines)


def test_the_api_key_is_never_printed(emulator: EmulatorProcess, tmp_path: Path) -> None:
    emulator.configure({"api_key": "sk-right", "default": {"ttft": 0.01, "gap": 0.001, "output_tokens": 4}})
    saved = tmp_path / "r.jsonl"
    # a wrong key: the server quotes it back in its 401 answer
    result = invoke(emulator.url, "-m", "emulated", "-c", "2", "--max-tokens", "4", "-k", "sk-wrong-123456",
                    "--save-requests", str(saved))
    assert result.exit_code == 1
    assert "401" in result.stdout and "***" in result.stdout
    for text in (result.stdout, result.stderr, saved.read_text()):
        assert "sk-wrong-123456" not in text
    for fmt in ("json", "csv", "table"):
        result = invoke(emulator.url, "-c", "1", "--max-tokens", "4", "-k", "sk-right", "--format", fmt)
        assert result.exit_code == 0 and "sk-right" not in result.stdout + result.stderr


@pytest.mark.parametrize("args, message", [
    (["-c", "1,x"], "--concurrency"),
    (["-c", "0"], "at least 1"),
    (["--rate", "5"], "--rate needs --requests"),
    (["--rate", "-1", "--requests", "3"], "positive"),
    (["--burstiness", "2"], "needs --rate"),
    (["--requests", "3", "--duration", "2"], "not both"),
    (["--input-tokens", "10", "--prompt", "hi"], "only one of"),
    (["--shared-prefix-tokens", "4"], "needs --input-tokens"),
    (["--input-tokens", "4", "--shared-prefix-tokens", "4"], "smaller than"),
    (["--slo", "ttft=fast"], "not a time"),
    (["--slo", "latency=1s"], "NAME=TIME"),
    (["--format", "json", "--csv-requests"], "--csv-requests"),
    (["--timeout", "0"], "--timeout"),
    (["--max-tokens", "0"], "--max-tokens"),
    (["--prompt-file", "/nonexistent/prompts.jsonl"], "no such file"),
])
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(bench, ["http://127.0.0.1:9", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_bad_url_and_unreachable_server() -> None:
    result = CliRunner().invoke(bench, ["ftp://example"])
    assert result.exit_code == 2 and "http(s) URL" in result.output
    result = CliRunner().invoke(bench, ["http://127.0.0.1:9", "-c", "1"])  # nothing there, no --model
    assert result.exit_code == 1 and "cannot list models" in result.output and "--model" in result.output


def test_url_forms_and_slo_units() -> None:
    for url in ("http://h:8", "http://h:8/", "http://h:8/v1", "http://h:8/v1/chat/completions"):
        assert endpoints(url) == ("http://h:8", "http://h:8/v1", "http://h:8/v1/chat/completions")
    assert endpoints("https://h/api/v1") == ("https://h/api", "https://h/api/v1", "https://h/api/v1/chat/completions")
    slo = parse_slo("ttft=0.5s,tpot=50ms,itl=200us,e2e=3")
    assert (slo.ttft_ms, slo.tpot_ms, slo.itl_ms, slo.e2e_ms) == (500.0, 50.0, 0.2, 3.0)
