"""Does our Gen speed agree with llama-server's own `timings` and `/metrics`? The acceptance bar
of issue 12: within 5 % at c <= 4 on a quiet host.

Starts the cached llama-server with the tiny model (as the real-tier tests do; run
`llmops provision tests/playbooks/llama.yml` first), benchmarks it at each concurrency
--rounds times with --tokens output tokens each (ignore_eos, so every response is that long),
and prints, per level and round, our decode speed (1/TPOT, as received), the server's from its
timings (`(predicted_n - 1) / predicted_ms`, what the pinned build's `predicted_per_second` is),
and how far apart they are; then the same from the `/metrics` counters scraped around the level
(server started with --metrics: decode steps over `tokens_predicted_seconds_total`, against our
pooled decode speed over the same requests) with the tokens it counted against ours. The verdict
lines take the median disagreement over the rounds of each level.

    python benchmarks/crosscheck_timings.py [--tokens 128] [--rounds 3] [--concurrency 1,2,4]

With the tiny model one token takes about a millisecond, so a short response is at the mercy of
one late SSE read on a busy host: more tokens give a steadier figure. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from llmops.bench.client import RequestOptions
from llmops.bench.engine import Bench, LoadSpec
from llmops.bench.prompts import PromptSpec

CACHE = Path.home() / ".cache" / "llmops"
BAR_PCT = 5.0


def cached(pattern: str) -> str:
    found = sorted(glob.glob(str(CACHE / pattern)))
    if not found:
        sys.exit(f"nothing matches {CACHE / pattern}: run `llmops provision tests/playbooks/llama.yml` first")
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen([cached("llama.cpp/*/bin/llama-server"), "-m", cached("models/*/tiny.gguf"),
                                 "--host", "127.0.0.1", "--port", str(port), "-c", "8192", "-np", "4",
                                 "--alias", "tiny", "--metrics"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"llama-server exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit(f"llama-server not ready in 120 s; see {log}")


def one_round(url: str, concurrency: list[int], tokens: int) -> list[dict]:
    bench = Bench(base_url=url, opts=RequestOptions(url=url + "/v1/chat/completions", model="tiny", ignore_eos=True),
                  load=LoadSpec(concurrency=concurrency),
                  prompt_spec=PromptSpec(text="hello", max_tokens=tokens, unique=True), warmup_request=True,
                  metrics_path="/metrics")
    return asyncio.run(bench.run())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", default="1,2,4")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "server.log")
        try:
            per_level: dict[int, list[float]] = {c: [] for c in levels}
            by_metrics: dict[int, list[float]] = {c: [] for c in levels}
            for rnd in range(1, args.rounds + 1):
                for level in one_round(url, levels, args.tokens):
                    srv = level.get("server") or {}
                    if srv.get("decode_disagree_pct") is None:
                        print(f"round {rnd} c={level['concurrency']}: the server sent no timings")
                        continue
                    per_level[level["concurrency"]].append(srv["decode_disagree_pct"])
                    print(f"round {rnd} c={level['concurrency']}: client {srv['client_decode_tps_p50']:8.1f} tok/s"
                          f"  server {srv['server_decode_tps_p50']:8.1f} tok/s"
                          f"  client/server {srv['decode_disagree_pct']:+6.2f} %")
                    m = srv.get("metrics") or {}
                    if m.get("decode_disagree_pct") is None:
                        print(f"    /metrics: not compared ({m.get('reason') or 'no decode figure'})")
                        continue
                    by_metrics[level["concurrency"]].append(m["decode_disagree_pct"])
                    print(f"    /metrics: client {m['client_decode_tps']:8.1f} tok/s  server {m['server_decode_tps']:8.1f}"
                          f" tok/s  client/server {m['decode_disagree_pct']:+6.2f} %  tokens {m['generated_tokens']}"
                          f"/{m['client_tokens']}")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    for source, table in (("timings", per_level), ("/metrics", by_metrics)):
        worst = 0.0
        for c, pcts in table.items():
            if pcts:
                med = statistics.median(pcts)
                worst = max(worst, abs(med))
                print(f"{source} c={c}: median disagreement {med:+.2f} % over {len(pcts)} rounds "
                      f"(range {min(pcts):+.2f} .. {max(pcts):+.2f})")
        verdict = "within" if worst < BAR_PCT else "OUTSIDE"
        print(f"{source}: worst level median {worst:.2f} %: {verdict} the {BAR_PCT:.0f} % bar")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
