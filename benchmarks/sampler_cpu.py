"""CPU cost of llmops' memory sampler on the host, at 1 Hz and 10 Hz.

Starts a real llama-server (from the llmops cache; run `llmops provision playbooks/quickstart.yml`
first) through the agent, runs the agent's sampler against it for a while at each rate, and reads
the sampler's own CPU time from /proc (utime + stime). Prints the share of one core it used, and
the machine's other load, side by side. Target: under 1 % of one core at 1 Hz.

    .venv/bin/python benchmarks/sampler_cpu.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

AGENT = str(Path(__file__).resolve().parent.parent / "llmops" / "agent" / "hostagent.py")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    fields = stat[stat.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def agent(*args: str) -> dict:
    out = subprocess.run([sys.executable, AGENT, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    binary = sorted(glob.glob(os.path.expanduser("~/.cache/llmops/llama.cpp/*/bin/llama-server")))
    model = sorted(glob.glob(os.path.expanduser("~/.cache/llmops/models/tiny-*/tiny.gguf")))
    if not binary or not model:
        print("run `llmops provision playbooks/quickstart.yml` first", file=sys.stderr)
        return 1
    work = Path("/tmp/llmops-sampler-bench")
    work.mkdir(exist_ok=True)
    server = agent("start", "--log", str(work / "server.log"), "--command",
                   f"{binary[0]} -m {model[0]} --host 127.0.0.1 --port 18777 -c 512")
    results = {}
    try:
        time.sleep(2)
        for hz in (1, 10):
            out = work / f"samples-{hz}.jsonl"
            out.unlink(missing_ok=True)
            sampler = subprocess.Popen([sys.executable, AGENT, "sample", str(server["pid"]), "--sid",
                                        str(server["sid"]), "--out", str(out), "--interval", str(1.0 / hz)])
            time.sleep(1.0)  # leave out interpreter start-up: it is paid once per server, not per sample
            c0, t0 = cpu_seconds(sampler.pid), time.monotonic()
            time.sleep(args.seconds)
            c1, t1 = cpu_seconds(sampler.pid), time.monotonic()
            sampler.terminate()
            sampler.wait()
            samples = sum(1 for _ in out.open())
            results[f"{hz}_hz"] = {"core_percent": round(100.0 * (c1 - c0) / (t1 - t0), 3), "samples": samples,
                                   "ms_cpu_per_sample": round(1000.0 * (c1 - c0) / max(1, (t1 - t0) * hz), 3)}
    finally:
        agent("stop", str(server["pid"]), "--sid", str(server["sid"]), "--timeout", "10")
    results["target"] = "under 1 % of one core at 1 Hz"
    results["load_average"] = os.getloadavg()
    results["date"] = time.strftime("%Y-%m-%d %H:%M")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
