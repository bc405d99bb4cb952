"""Wall time of `llmops apply` on 1 vs 3 hosts, and llmops' own overhead per variant.

Hosts are network namespaces on this machine with their own sshd (as in the tests), the servers
are the deterministic emulator (known timing, almost no CPU), so what is measured is llmops: its
parallelism across hosts (target: 3 hosts take under 1.3x the time of 1) and the time it adds per
variant beyond the server's own startup and the benchmark (targets: under 1 s locally, under 2 s
over SSH). Run as root: `.venv/bin/python benchmarks/hosts_scaling.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import netns  # noqa: E402
import sshd as sshd_mod  # noqa: E402
import yaml_helpers  # noqa: E402

PLAYBOOK = ROOT / "benchmarks" / "hosts_scaling.yml"


def apply(inventory: Path | None, run_dir: Path) -> tuple[float, dict]:
    args = [sys.executable, "-m", "llmops", "apply", str(PLAYBOOK), "--run-dir", str(run_dir),
            "-e", json.dumps({"emulator_python": sys.executable})]
    if inventory:
        args += ["-i", str(inventory)]
    t0 = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"apply failed:\n{proc.stdout[-3000:]}\n{proc.stderr}")
    return wall, json.loads((run_dir / "results.json").read_text())


def overhead(results: dict) -> list[float]:
    """Per variant: its span minus the server's startup and the benchmark levels."""
    out = []
    for cell in results["cells"]:
        span = cell["finished_at"] - cell["started_at"]
        bench = sum(lv["t_end"] - lv["t_start"] for lv in cell["levels"])
        out.append(span - cell["startup"]["ready_s"] - bench)
    return out


def server_startup_per_host(results: dict) -> dict[str, float]:
    """Seconds each host spent waiting for its own (emulated) servers to come up."""
    out: dict[str, float] = {}
    for cell in results["cells"]:
        out[cell["host"]] = out.get(cell["host"], 0.0) + cell["startup"]["ready_s"]
    return out


def main() -> int:
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    folder = Path(tempfile.mkdtemp(prefix="llmops-scaling-"))
    lab = netns.Lab(folder, run="bs")
    key = folder / "client_key"
    sshd_mod.keygen(key)
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_average_before": os.getloadavg()}
    try:
        local_wall, local = apply(None, folder / "local")
        for i in (1, 2, 3):
            lab.add(i, client_key=key)
        inv = lab.inventory()
        one = yaml_helpers.dump({"hosts": {"lab1": inv["hosts"]["lab1"]}}, folder / "one.yml")
        three = yaml_helpers.dump(inv, folder / "three.yml")
        one_wall, one_res = apply(one, folder / "one")
        three_wall, three_res = apply(three, folder / "three")
    finally:
        lab.close()
    report.update({
        "wall_s": {"local_1_host": round(local_wall, 2), "ssh_1_host": round(one_wall, 2),
                   "ssh_3_hosts": round(three_wall, 2)},
        "ratio_3_hosts_over_1": round(three_wall / one_wall, 3),
        # The emulator's own start (a python importing aiohttp) slows down when three start at
        # once on two cores; this ratio leaves the servers' startup out, to show llmops' part.
        "ratio_without_server_startup": round(
            (three_wall - max(server_startup_per_host(three_res).values()))
            / (one_wall - max(server_startup_per_host(one_res).values())), 3),
        "overhead_per_variant_s": {"local": [round(x, 2) for x in overhead(local)],
                                   "ssh_1_host": [round(x, 2) for x in overhead(one_res)],
                                   "ssh_3_hosts": [round(x, 2) for x in overhead(three_res)]},
        "targets": {"ratio": "< 1.3", "overhead_local_s": "< 1", "overhead_ssh_s": "< 2"},
    })
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
