"""report.html read as text: self-contained, secrets kept out, the summary's numbers right."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmops.report.html import render_html, shown_command, startup_segments, summarize

from .conftest import RUNS, cell, edit_results, level


@pytest.fixture(scope="module")
def quickstart_html() -> str:
    return render_html(RUNS / "quickstart-cpu")


def test_self_contained(quickstart_html: str) -> None:
    page = quickstart_html
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page and "<img" not in page
    # Every reference stays inside the page: anchors and the SVGs' own ids only.
    assert not re.findall(r'(?:src|href)="(?!#)[^"]*"', page)
    assert set(re.findall(r"url\((.)", page)) <= {"#"}
    assert "http://" not in page.replace("http://www.w3.org/", "")  # SVG namespaces are names, not requests
    assert "https://" not in page
    assert "default-src 'none'" in page  # and the browser is told to refuse anything else


def test_plots_are_inline_svg_with_unique_ids(quickstart_html: str) -> None:
    svgs = re.findall(r"<svg .*?</svg>", quickstart_html, flags=re.S)
    labels = [re.search(r'aria-label="([^"]*)"', s).group(1) for s in svgs]
    assert labels == ["Gen TPS against concurrency, one line per variant", "TTFT p50 and p99 against concurrency",
                      "Startup time per variant, split into phases", "Memory per variant, idle and peak",
                      "Memory through the run, levels marked"]  # no success plot: nothing was lost
    ids = re.findall(r'\sid="([^"]+)"', quickstart_html)
    assert len(ids) == len(set(ids))
    # Drawn in the page's colour, so dark mode gets light axes; backgrounds transparent.
    assert "currentColor" in svgs[0] and "#010203" not in quickstart_html and "#ffffff" not in svgs[0].lower()
    for text in ("Concurrency (parallel requests, log scale)", "Gen TPS (generated tokens/s, all requests)",
                 "Time to first token (s, log scale)", "Seconds from spawn until the server answered (s)",
                 "System RAM (GiB)", "Memory (MiB)", "Memory (GiB)"):
        assert text in quickstart_html, text


def test_summary_numbers(quickstart_html: str) -> None:
    summary = quickstart_html.split('<section id="summary">')[1].split("</section>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", summary, flags=re.S)[1:]
    cells = [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)] for row in rows]
    assert cells == [
        ["llama.cpp-np1 llama.cpp", "0.41 s", "62.8 MiB / 103.7 MiB", "684.42", "684.42 at 1", "4"],
        ["llama.cpp-np4 llama.cpp", "0.29 s", "63.2 MiB / 104.9 MiB", "718.81", "1,071.68 at 32", "8"],
        ["vllm vllm", "87.56 s", "2.78 GiB / 2.79 GiB", "162.27", "359.48 at 32", "never (to 32)"],
    ]
    header = re.findall(r'<th scope="col">(.*?)</th>', summary)
    assert header == ["Variant", "Startup", "RAM idle / peak", "Gen TPS at 1", "Best Gen TPS", "TTFT p99 &gt; 1 s at"]
    assert "Starts fastest:</strong> llama.cpp-np4 with 0.29 s" in summary
    assert "Keeps TTFT p99 under 1 s longest:</strong> vllm, never over, up to 32" in summary


def test_threshold_is_configurable() -> None:
    strict = summarize([c for c in _cells()], ttft_threshold_s=0.05)
    assert [v.ttft_cross_at for v in strict] == ["2", "8", "4"]
    loose = summarize(_cells(), ttft_threshold_s=30.0)
    assert [v.ttft_cross_at for v in loose] == [None, None, None]
    assert "TTFT p99 &gt; 0.05 s at" in render_html(RUNS / "quickstart-cpu", ttft_threshold_s=0.05)


def _cells() -> list[dict]:
    import json

    return json.loads((RUNS / "quickstart-cpu" / "results.json").read_text())["cells"]


def test_lost_requests_show(llama_only: Path) -> None:
    page = render_html(llama_only)
    assert 'aria-label="Success rate against concurrency"' in page
    assert '<li class="bad"><strong>llama.cpp-np4 lost requests:</strong> 1 of 2 at 2</li>' in page
    # Half the requests at 2 failed: over the threshold there, whatever the TTFT of the others.
    assert [v.ttft_cross_at for v in summarize(_json(llama_only)["cells"], 1.0)] == ["4", "2"]


def _json(run: Path) -> dict:
    import json

    return json.loads((run / "results.json").read_text())


def test_gpu_memory_in_summary_bars_and_timeline(gpu_run: Path) -> None:
    page = render_html(gpu_run)
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    assert "VRAM idle / peak" in summary and "GTT idle / peak" in summary
    assert "36.72 GiB / 36.82 GiB" in summary  # vLLM's GTT, as the blog post saw it
    assert "Least GPU memory at peak (VRAM + GTT):</strong> llama.cpp-np1 with 1.99 GiB" in summary
    assert ">VRAM (MiB)<" in page and ">GTT (GiB)<" in page  # a bar panel each
    # np4's timeline has the VRAM line parsed from the collector's raw output.
    timeline = re.search(r'<svg [^>]*aria-label="Memory through the run.*?</svg>', page, flags=re.S).group(0)
    assert ">VRAM<" in timeline
    assert "Whole GPU at peak (every process, not only this server)" in page


def test_secret_looking_env_and_options_are_masked(quickstart: Path) -> None:
    def add_secrets(results: dict) -> None:
        vllm = cell(results, "vllm")
        vllm["env"].update({"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz", "OPENAI_KEY_FILE": "sk-live-1234567890",
                            "MODEL_SALT": "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "VLLM_CPU_KVCACHE_SPACE": "1",
                            "SERVED": "Qwen/Qwen3-30B-A3B-Instruct-2507"})
        vllm["command"] += " --api-key s3cr3t-value"
    edit_results(quickstart, add_secrets)
    page = render_html(quickstart)
    for secret in ("hf_abcdefghijklmnopqrstuvwxyz", "sk-live-1234567890", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
                   "s3cr3t-value"):
        assert secret not in page
    assert ("HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 HF_TOKEN=*** OPENAI_KEY_FILE=*** MODEL_SALT=*** "
            "SERVED=Qwen/Qwen3-30B-A3B-Instruct-2507 ~/.cache/llmops/venvs/") in page  # ids stay readable
    assert "--api-key ***" in page


def test_exact_command_with_environment() -> None:
    vllm = cell(_json(RUNS / "quickstart-cpu"), "vllm")
    recorded = (RUNS / "quickstart-cpu" / "cells" / "localhost" / "vllm" / "command.txt").read_text().splitlines()[1]
    assert shown_command(vllm) == recorded  # what command.txt says was run


def test_startup_segments_follow_the_log() -> None:
    vllm = cell(_json(RUNS / "quickstart-cpu"), "vllm")
    segments = startup_segments(vllm["startup"])
    assert [name for name, _, _ in segments] == ["weights loaded", "kv cache ready", "engine ready", "api up"]
    assert segments[0][1] == 0.0 and segments[-1][2] == pytest.approx(vllm["startup"]["ready_s"])  # clipped
    assert all(a[2] == b[1] for a, b in zip(segments, segments[1:], strict=False))


def test_failed_variant_without_levels(llama_only: Path) -> None:
    def fail(results: dict) -> None:
        c = cell(results, "llama.cpp-np1")
        c.update(status="failed", error="server exited with code 1", levels=[], memory=None, startup=None)
    edit_results(llama_only, fail)
    page = render_html(llama_only)
    assert "<strong>llama.cpp-np1 failed:</strong> server exited with code 1" in page
    assert '<th scope="col">Status</th>' in page
    assert '<td class="bad">failed</td>' in page


def test_hosts_facts_and_provisioning(quickstart_html: str) -> None:
    setup = quickstart_html.split('<section id="setup">')[1]
    for text in ("Debian GNU/Linux 12 (bookworm)", "6.18.44-fc-v657", "AMD EPYC × 2", "23.54 GiB total",
                 "build llama-server (llama.cpp 11434.0.0, CPU)", "Kernel command line", "GPU</dt><dd>none found"):
        assert text in setup, text


def test_level_in_a_failed_level(quickstart: Path) -> None:
    def lose_all(results: dict) -> None:
        lv = level(cell(results, "vllm"), 32)
        lv.update(succeeded=0, failed=32, success_rate=0.0, gen_tps=0.0, ttft_p50_s=None, ttft_p99_s=None)
    edit_results(quickstart, lose_all)
    page = render_html(quickstart)
    assert 'aria-label="Success rate against concurrency"' in page
    assert "never (to 32)" not in page


def test_two_hosts_label_variants_with_their_host(quickstart: Path) -> None:
    edit_results(quickstart, lambda r: cell(r, "vllm").update(host="lab$box"))  # "$" is mathtext to matplotlib
    page = render_html(quickstart)
    assert "vllm @ lab$box" in page and "llama.cpp-np1 @ localhost" in page
    setup = page.split('<section id="setup">')[1]
    assert "<h3>lab$box</h3>" in setup and "No facts were recorded for this host." in setup
