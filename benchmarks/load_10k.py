"""Load: 10 000 requests, closed loop at concurrency 512, against the emulator.

Checks that every request is accounted for (succeeded + failed = sent), that the client does not
crash, and how much memory the client holds: its peak RSS is printed next to the RSS after a run
of 1 000 requests, so "bounded" is a ratio measured in one run, not a hope.

    .venv/bin/python benchmarks/load_10k.py [--requests 10000] [--concurrency 512] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def start_emulator(tokens: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "llmops.bench.emulator", "--port", "0", "--ttft", "0.002",
                             "--gap", "0.001", "--output-tokens", str(tokens), "--slots", "100000"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("LISTENING"):
            return proc, int(line.split()[1])
    raise RuntimeError("the emulator did not start")


async def run(port: int, requests: int, concurrency: int, tokens: int) -> dict:
    from llmops.bench.client import RequestOptions
    from llmops.bench.engine import Bench, LoadSpec
    from llmops.bench.prompts import PromptSpec

    seen = {"n": 0}

    def on_record(record) -> None:  # noqa: ANN001 - what apply does: stream records out, keep none
        seen["n"] += 1

    bench = Bench(base_url=f"http://127.0.0.1:{port}",
                  opts=RequestOptions(url=f"http://127.0.0.1:{port}/v1/chat/completions", model="emulator",
                                      ignore_eos=True),
                  load=LoadSpec(concurrency=[concurrency], requests=requests),
                  prompt_spec=PromptSpec(text="load test", max_tokens=tokens), on_record=on_record)
    levels = await bench.run()
    level = levels[0]
    return {"sent": seen["n"], "requests": level["requests"], "succeeded": level["succeeded"],
            "failed": level["failed"], "errors": level["errors"], "total_s": level["total_s"],
            "gen_tps": level["gen_tps"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    emulator, port = start_emulator(args.tokens)
    try:
        t0 = time.monotonic()
        small = asyncio.run(run(port, args.requests // 10, args.concurrency, args.tokens))
        rss_small = peak_rss_mib()
        big = asyncio.run(run(port, args.requests, args.concurrency, args.tokens))
        rss_big = peak_rss_mib()
        wall = time.monotonic() - t0
    finally:
        emulator.terminate()
        emulator.wait()
    accounted = big["succeeded"] + big["failed"] == big["requests"] == big["sent"] == args.requests
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "small_run": small, "big_run": big,
                      "peak_rss_mib_after_small": round(rss_small, 1), "peak_rss_mib_after_big": round(rss_big, 1),
                      "rss_ratio_big_over_small": round(rss_big / rss_small, 2), "wall_s": round(wall, 1),
                      "every_request_accounted_for": accounted}, indent=2))
    return 0 if accounted else 1


if __name__ == "__main__":
    sys.exit(main())
