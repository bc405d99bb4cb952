"""How much a benchmark client gets in the way: llmops bench vs `vllm bench serve` vs guidellm.

Two measurements, each client against the same emulator (llmops/bench/emulator.py) in one run:

1. Intake: how many streamed tokens/s the client takes in from an emulator that writes each
   whole 1000-token stream at once (one HTTP chunk per event, as real servers send them), at
   concurrency 64 and 256, closed loop, 4*c requests. The figure is each client's own output
   throughput (tokens over its makespan); the emulator costs next to nothing, so the client is
   the limit.
2. TTFT error: the emulator answers after a known delay and logs, on the machine's monotonic
   clock, the kernel's arrival time of each request and when it wrote the first token. Its
   first token names the request ("r<index>"), so every client's per-request TTFT can be matched
   to the emulator's truth: error = client TTFT - (first write - arrival). Concurrency 1 to 512,
   max(c, TTFT_MIN_REQUESTS) requests each.

Usage (vLLM and guidellm are optional; each lives in its own virtualenv):

    python benchmarks/client_throughput.py --vllm-python /tmp/vllmvenv/bin/python \\
        --guidellm /tmp/guidellmvenv/bin/guidellm [--tokenizer DIR] [--repeat 3] [--json out.json]

Both peers need a tokenizer directory (any small HF model dir; no hub is reachable); the default
is the tiny model llmops provisions under ~/.cache/llmops/models.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmops.bench.client import RequestOptions, RequestRecord  # noqa: E402
from llmops.bench.emulator import EmulatorProcess  # noqa: E402
from llmops.bench.engine import Bench, LoadSpec  # noqa: E402
from llmops.bench.prompts import PromptSpec  # noqa: E402

INTAKE_LEVELS = (64, 256)
INTAKE_TOKENS = 1000
TTFT_LEVELS = (1, 4, 16, 64, 256, 512)
TTFT_S, GAP_S, TTFT_TOKENS = 0.1, 0.005, 8
TTFT_MIN_REQUESTS = 32  # samples at low concurrency: max(c, this) requests per level
MODEL = "emulated"

# Runs `vllm bench serve` once per argument list in one process (importing vLLM takes a while).
VLLM_DRIVER = """
import json, sys
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.benchmarks import serve
for argv in json.loads(sys.argv[1]):
    parser = FlexibleArgumentParser()
    serve.add_cli_args(parser)
    serve.main(parser.parse_args(argv))
"""


# -- our client ----------------------------------------------------------------------------

def ours(url: str, concurrency: int, requests: int, max_tokens: int) -> tuple[dict[str, Any], list[RequestRecord],
                                                                              Bench]:
    records: list[RequestRecord] = []
    bench = Bench(base_url=url, opts=RequestOptions(url=url + "/v1/chat/completions", model=MODEL),
                  load=LoadSpec(concurrency=[concurrency], requests=requests),
                  prompt_spec=PromptSpec(text="hello", max_tokens=max_tokens, unique=True),
                  on_record=records.append, preflight=False)
    levels = asyncio.run(bench.run())
    return levels[0], records, bench


# -- peers ---------------------------------------------------------------------------------

def vllm_args(url: str, tokenizer: str, concurrency: int, requests: int, out_tokens: int, result: Path) -> list[str]:
    return ["--backend", "openai-chat", "--base-url", url, "--endpoint", "/v1/chat/completions", "--model", MODEL,
            "--tokenizer", tokenizer, "--dataset-name", "random", "--random-input-len", "32",
            "--random-output-len", str(out_tokens), "--num-prompts", str(requests), "--max-concurrency",
            str(concurrency), "--ignore-eos", "--disable-tqdm", "--save-result", "--save-detailed",
            "--result-dir", str(result.parent), "--result-filename", result.name]


def run_vllm(python: str, runs: list[list[str]], timeout: float) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([python, "-c", VLLM_DRIVER, json.dumps(runs)], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"vllm bench serve failed:\n{proc.stderr[-3000:]}")


def run_guidellm(guidellm: str, url: str, tokenizer: str, streams: list[int], counts: list[int], out_tokens: int,
                 result: Path, timeout: float) -> list[dict[str, Any]]:
    """One guidellm run with a concurrent sub-benchmark per stream count; its benchmarks."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [guidellm, "run", "--backend", f"kind=openai_http,target={url},model={MODEL}",
           "--profile", "kind=concurrent", "--override", "profile.streams", ",".join(map(str, streams)),
           "--constraint", json.dumps({"kind": "max_requests", "count": counts}),
           "--data", f"kind=synthetic_text,prompt_tokens=32,output_tokens={out_tokens}",
           "--tokenizer", f"kind=hf_auto,model={tokenizer}", "--output", f"kind=json,path={result}",
           "--disable-console"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"guidellm failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(result.read_text())["benchmarks"]


def guidellm_intake(bench: dict[str, Any]) -> float:
    ok = bench["requests"]["successful"]
    span = max(r["request_end_time"] for r in ok) - min(r["request_start_time"] for r in ok)
    return sum(r["output_tokens"] for r in ok) / span


# -- TTFT truth ----------------------------------------------------------------------------

def truth_by_index(log: list[dict[str, Any]]) -> dict[int, float]:
    """Request index -> the emulator's TTFT: first write began - kernel arrival."""
    return {e["index"]: e["t_first_write_begin"] - e["t_arrival"] for e in log if e["t_first_write_begin"]}


def index_of(text: str) -> int | None:
    head = text.split(" ", 1)[0] if text else ""
    return int(head[1:]) if head.startswith("r") and head[1:].isdigit() else None


def stats_ms(errors: list[float]) -> dict[str, float]:
    data = sorted(e * 1000 for e in errors)
    if not data:
        return {}
    return {"n": len(data), "p50": statistics.median(data), "p99": data[min(len(data) - 1, int(0.99 * len(data)))],
            "max": data[-1], "mean": statistics.fmean(data)}


# -- the two measurements ------------------------------------------------------------------

def intake(args: argparse.Namespace, tmp: Path) -> dict[str, dict[int, list[float]]]:
    out: dict[str, dict[int, list[float]]] = {"llmops": {}, "vllm": {}, "guidellm": {}}
    config = {"model": MODEL, "default": {"burst": True, "output_tokens": INTAKE_TOKENS,
                                          "burst_one_chunk": args.one_chunk}}
    with EmulatorProcess(config) as emu:
        for rep in range(args.repeat):
            for c in INTAKE_LEVELS:
                level, _, _ = ours(emu.url, c, 4 * c, INTAKE_TOKENS)
                assert level["failed"] == 0, level["errors"]
                out["llmops"].setdefault(c, []).append(level["gen_tps"])
                print(f"  intake llmops   c={c:<4} {level['gen_tps']:>10,.0f} tok/s", flush=True)
            if args.vllm_python:
                runs, files = [], []
                for c in INTAKE_LEVELS:
                    files.append(tmp / f"vllm-intake-{rep}-{c}.json")
                    runs.append(vllm_args(emu.url, args.tokenizer, c, 4 * c, INTAKE_TOKENS, files[-1]))
                run_vllm(args.vllm_python, runs, args.peer_timeout)
                for c, f in zip(INTAKE_LEVELS, files, strict=False):
                    doc = json.loads(f.read_text())
                    assert doc["failed"] == 0 and doc["total_output_tokens"] == 4 * c * INTAKE_TOKENS
                    out["vllm"].setdefault(c, []).append(doc["output_throughput"])
                    print(f"  intake vllm     c={c:<4} {doc['output_throughput']:>10,.0f} tok/s", flush=True)
            if args.guidellm:
                benches = run_guidellm(args.guidellm, emu.url, args.tokenizer, list(INTAKE_LEVELS),
                                       [4 * c for c in INTAKE_LEVELS], INTAKE_TOKENS,
                                       tmp / f"guidellm-intake-{rep}.json", args.peer_timeout)
                for c, b in zip(INTAKE_LEVELS, benches, strict=False):
                    tps = guidellm_intake(b)
                    out["guidellm"].setdefault(c, []).append(tps)
                    print(f"  intake guidellm c={c:<4} {tps:>10,.0f} tok/s", flush=True)
    return out


def ttft_error(args: argparse.Namespace, tmp: Path) -> dict[str, dict[int, dict[str, float]]]:
    out: dict[str, dict[int, dict[str, float]]] = {"llmops": {}, "vllm": {}, "guidellm": {}}
    config = {"model": MODEL, "default": {"ttft": TTFT_S, "gap": GAP_S, "output_tokens": TTFT_TOKENS}}
    with EmulatorProcess(config) as emu:
        for c in TTFT_LEVELS:
            n = max(c, TTFT_MIN_REQUESTS)
            _, records, _ = ours(emu.url, c, n, TTFT_TOKENS)
            truth = {e["response_id"]: e["t_first_write_begin"] - e["t_arrival"] for e in emu.log()}
            errors = [r.ttft - truth[r.response_id] for r in records if r.ok and r.ttft is not None]
            out["llmops"][c] = stats_ms(errors)
            print(f"  ttft llmops   c={c:<4} {fmt_err(out['llmops'][c])}", flush=True)
        if args.vllm_python:
            files = [tmp / f"vllm-ttft-{c}.json" for c in TTFT_LEVELS]
            run_vllm(args.vllm_python, [vllm_args(emu.url, args.tokenizer, c, max(c, TTFT_MIN_REQUESTS), TTFT_TOKENS, f)
                                        for c, f in zip(TTFT_LEVELS, files, strict=False)], args.peer_timeout)
            truth_i = truth_by_index(emu.log())
            for c, f in zip(TTFT_LEVELS, files, strict=False):
                doc = json.loads(f.read_text())
                errors = [ttft - truth_i[i] for ttft, text in zip(doc["ttfts"], doc["generated_texts"], strict=False)
                          if (i := index_of(text)) is not None and i in truth_i and ttft]
                out["vllm"][c] = stats_ms(errors)
                print(f"  ttft vllm     c={c:<4} {fmt_err(out['vllm'][c])}", flush=True)
        if args.guidellm:
            benches = run_guidellm(args.guidellm, emu.url, args.tokenizer, list(TTFT_LEVELS),
                                   [max(c, TTFT_MIN_REQUESTS) for c in TTFT_LEVELS], TTFT_TOKENS, tmp / "guidellm-ttft.json",
                                   args.peer_timeout)
            truth_i = truth_by_index(emu.log())
            for c, b in zip(TTFT_LEVELS, benches, strict=False):
                errors = [r["time_to_first_token_ms"] / 1000 - truth_i[i] for r in b["requests"]["successful"]
                          if (i := index_of(r.get("output") or "")) is not None and i in truth_i]
                out["guidellm"][c] = stats_ms(errors)
                print(f"  ttft guidellm c={c:<4} {fmt_err(out['guidellm'][c])}", flush=True)
    return out


def fmt_err(s: dict[str, float]) -> str:
    if not s:
        return "no samples"
    return f"error ms p50 {s['p50']:7.3f}  p99 {s['p99']:7.3f}  max {s['max']:7.3f}  (n={s['n']})"


def default_tokenizer() -> str | None:
    found = sorted(glob.glob(str(Path.home() / ".cache/llmops/models/*/hf/tokenizer.json")))
    return str(Path(found[0]).parent) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-python", help="Python of a virtualenv with vLLM (for `vllm bench serve`)")
    parser.add_argument("--guidellm", help="the guidellm command of its own virtualenv")
    parser.add_argument("--tokenizer", default=default_tokenizer(), help="a local HF tokenizer dir for the peers")
    parser.add_argument("--repeat", type=int, default=3, help="intake runs per client (the median is reported)")
    parser.add_argument("--peer-timeout", type=float, default=900)
    parser.add_argument("--skip-intake", action="store_true")
    parser.add_argument("--skip-ttft", action="store_true")
    parser.add_argument("--one-chunk", action="store_true",
                        help="intake: the emulator sends each whole stream as one HTTP chunk (real servers send "
                             "one per event, the default)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if (args.vllm_python or args.guidellm) and not args.tokenizer:
        parser.error("the peers need --tokenizer DIR (no cached tiny model found)")

    load0 = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"client_throughput: {started}, {os.cpu_count()} CPUs, load average {load0[0]:.2f}", flush=True)
    result: dict[str, Any] = {"date": started, "cpus": os.cpu_count(), "load_before": load0}
    with tempfile.TemporaryDirectory(prefix="llmops-clients-") as tmpdir:
        tmp = Path(tmpdir)
        if not args.skip_intake:
            framing = "one HTTP chunk per stream" if args.one_chunk else "one HTTP chunk per event"
            print(f"Intake: whole {INTAKE_TOKENS}-token streams ({framing}), closed loop, 4*c requests", flush=True)
            result["intake_tok_s"] = intake(args, tmp)
        if not args.skip_ttft:
            print(f"TTFT error: emulator TTFT {TTFT_S * 1000:g} ms, max(c, TTFT_MIN_REQUESTS) requests", flush=True)
            result["ttft_error_ms"] = ttft_error(args, tmp)
    result["load_after"] = os.getloadavg()

    print("\nSummary (median of runs)")
    for c, runs in sorted((result.get("intake_tok_s") or {}).get("llmops", {}).items()):
        ours_tps = statistics.median(runs)
        line = f"  intake c={c:<4} llmops {ours_tps:>10,.0f} tok/s"
        for peer in ("vllm", "guidellm"):
            peer_runs = result["intake_tok_s"][peer].get(c)
            if peer_runs:
                line += f" | {peer} {statistics.median(peer_runs):>9,.0f} (llmops/{peer} {ours_tps / statistics.median(peer_runs):.2f}x)"
        print(line)
    for c, s in sorted((result.get("ttft_error_ms") or {}).get("llmops", {}).items()):
        line = f"  TTFT error c={c:<4} p99 ms: llmops {s.get('p99', float('nan')):.3f}"
        for peer in ("vllm", "guidellm"):
            ps = result["ttft_error_ms"][peer].get(c)
            if ps:
                line += f" | {peer} {ps['p99']:.3f}"
        print(line)
    print(f"  load average before {load0[0]:.2f}, after {result['load_after'][0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
