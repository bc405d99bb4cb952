"""`llmops bench` sends the sampling it is given, the same fields on every request."""

from __future__ import annotations

from click.testing import CliRunner

from llmops.bench.emulator import EmulatorProcess
from llmops.cli_bench import bench


def test_sampling_flags_reach_every_request(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.001, "gap": 0.001, "output_tokens": 4}})
    result = CliRunner().invoke(bench, [emulator.url, "-c", "1,2", "--max-tokens", "4", "--format", "json",
                                        "--temperature", "0.7", "--top-p", "0.9", "--top-k", "40",
                                        "--min-p", "0.05", "--repeat-penalty", "1.1", "--seed", "7"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    sent = [entry["sampling"] for entry in emulator.log()]
    assert len(sent) >= 3  # the levels, and the probe that reads how the server counts
    assert all(s == {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1,
                     "repetition_penalty": 1.1, "seed": 7} for s in sent), sent


def test_no_sampling_flags_send_no_sampling_fields(emulator: EmulatorProcess) -> None:
    emulator.configure({"default": {"ttft": 0.001, "gap": 0.001, "output_tokens": 4}})
    result = CliRunner().invoke(bench, [emulator.url, "-c", "1", "--max-tokens", "4", "--format", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert all(entry["sampling"] == {} for entry in emulator.log())


def test_out_of_range_sampling_is_a_usage_error() -> None:
    bad = CliRunner().invoke(bench, ["http://127.0.0.1:9", "--top-p", "1.5"])
    assert bad.exit_code == 2 and "--top-p" in bad.output


def test_an_api_key_that_cannot_be_a_header_is_refused_before_anything_is_sent() -> None:
    for key in ("s3cr\u00e9t", "a\r\nX-Evil: 1", "two words"):
        result = CliRunner().invoke(bench, ["http://127.0.0.1:9/v1", "--api-key", key])
        assert result.exit_code == 2, result.output
        assert "visible ASCII" in result.output and key not in result.output
