"""Do the verdicts survive a busy host? The same variant pair, twice: quiet, then under a CPU hog.

Known truth: two emulators (llmops/bench/emulator.py) with the same token speed, one with 1
slot and one with 2. At c=1 they are equal (the right verdict is "tie"); at c=2 the 2-slot one
streams both requests at once and must win (about 2x the Gen TPS). Each level runs --repeat
times; verdicts come from bench/stats.py (a winner only where the 95 % intervals do not
overlap). The host's noise is measured as `llmops apply` does (hostagent noise snapshots around
each repetition, differenced by telemetry/hostnoise.py).

The second pass starts --hog-procs busy-looping processes that stop themselves after
--hog-seconds (and are killed at the end in any case). Expected: quiet -> tie at 1, np2 wins at
2; loaded -> the levels flagged "host busy", and no false winner (a tie is allowed: noise may
hide a real difference, it must not invent one).

    python benchmarks/noise_verdicts.py [--repeat 5] [--tokens 32] [--hog-procs 2] [--json out.json]

Only 127.0.0.1 is used. On a shared machine the "quiet" pass may be flagged too: that is the
host telling the truth about the other work on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from llmops.bench import stats
from llmops.bench.client import RequestOptions
from llmops.bench.emulator import EmulatorProcess
from llmops.bench.engine import Bench, LoadSpec
from llmops.bench.prompts import PromptSpec
from llmops.telemetry import hostnoise

HOG = "import time\nend = time.time() + {s}\nwhile time.time() < end:\n    pass\n"


def snapshot(pid: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "llmops.agent.hostagent", "noise", str(pid),
                          "--exclude", str(os.getpid())], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def run_variant(emu: EmulatorProcess, repeat: int, tokens: int) -> list[dict[str, Any]]:
    start: dict[str, Any] = {}

    def on_repeat(plan, index, event):  # noqa: ANN001, ANN202
        if event == "start":
            start["s"] = snapshot(emu.proc.pid)
            return None
        return hostnoise.between(start.pop("s"), snapshot(emu.proc.pid))

    bench = Bench(base_url=emu.url, opts=RequestOptions(url=emu.url + "/v1/chat/completions", model="emulated"),
                  load=LoadSpec(concurrency=[1, 2]), prompt_spec=PromptSpec(text="hello", max_tokens=tokens,
                                                                            unique=True),
                  repeat=repeat, on_repeat=on_repeat, warmup_request=True)
    return asyncio.run(bench.run())


def one_pass(label: str, emus: dict[str, EmulatorProcess], repeat: int, tokens: int) -> dict[str, Any]:
    levels = {name: run_variant(emu, repeat, tokens) for name, emu in emus.items()}
    out = {"pass": label, "levels": []}
    print(f"\n== {label} ==")
    for i, conc in enumerate((1, 2)):
        entries = [(name, stats.stat_of(lv[i], "gen_tps")) for name, lv in levels.items()]
        verdict = stats.verdict(entries)
        flags = sorted({f for lv in levels.values() for f in lv[i].get("flags") or []})
        other = max((lv[i].get("host_noise") or {}).get("other_cores") or 0.0 for lv in levels.values())
        text = "tie (within noise)" if verdict["kind"] == "tie" else f"{verdict['name']} wins"
        figures = ", ".join(f"{name} {stats.fmt_interval(s)}" for name, s in entries)
        print(f"c={conc}: {figures} -> {text}; other processes {other:.2f} cores"
              + (f"; flags: {'; '.join(flags)}" if flags else ""))
        out["levels"].append({"concurrency": conc, "verdict": verdict, "flags": flags, "other_cores": other,
                              "gen_tps": {name: s for name, s in entries}})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--gap", type=float, default=0.005, help="seconds between tokens (both variants)")
    parser.add_argument("--hog-procs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--hog-seconds", type=float, default=120.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    behavior = {"ttft": 0.02, "gap": args.gap, "output_tokens": args.tokens}
    emus = {"np1": EmulatorProcess({"slots": 1, "default": behavior}),
            "np2": EmulatorProcess({"slots": 2, "default": behavior})}
    hogs: list[subprocess.Popen] = []
    try:
        results = [one_pass("quiet", emus, args.repeat, args.tokens)]
        hogs = [subprocess.Popen([sys.executable, "-c", HOG.format(s=args.hog_seconds)])
                for _ in range(args.hog_procs)]
        time.sleep(1.0)
        results.append(one_pass(f"loaded ({args.hog_procs} CPU hogs)", emus, args.repeat, args.tokens))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(5)
        for emu in emus.values():
            emu.stop()
    quiet, loaded = results
    ok_quiet = (quiet["levels"][0]["verdict"]["kind"] == "tie"
                and quiet["levels"][1]["verdict"]["kind"] == "winner" and quiet["levels"][1]["verdict"]["name"] == "np2")
    false_winner = any(lv["verdict"]["kind"] == "winner" and lv["verdict"]["name"] != "np2" or
                       lv["concurrency"] == 1 and lv["verdict"]["kind"] == "winner" for lv in loaded["levels"])
    flagged = all(lv["flags"] for lv in loaded["levels"])
    print(f"\nquiet verdicts as the truth: {ok_quiet}; loaded levels flagged: {flagged}; "
          f"false winner under load: {false_winner}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0 if ok_quiet and flagged and not false_winner else 1


if __name__ == "__main__":
    sys.exit(main())
