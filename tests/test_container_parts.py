"""The pure parts of container support, fast: the engine's `stats` parse (on a real capture), the
cgroup summary, and the rendered llama.cpp container command (issue 13)."""

from __future__ import annotations

from pathlib import Path

import yaml_helpers
from conftest import llmops

from llmops.telemetry import containerstats, procmem

FIXTURES = Path(__file__).parent / "fixtures" / "containers"


def test_podman_stats_capture_parses_to_the_cgroup_figure() -> None:
    text = (FIXTURES / "podman-stats-json__llama-server-tiny.txt").read_text()
    parsed = containerstats.parse(text)
    assert parsed == {"memory_bytes": 13_550_000, "limit_bytes": 25_280_000_000, "pids": 14,
                      "raw": "13.55MB / 25.28GB"}
    # The .source names the cgroup's own reading at that moment: 13553664 bytes.
    assert abs(parsed["memory_bytes"] - 13553664) / 13553664 < 0.001


def test_docker_style_stats_and_garbage() -> None:
    line = '{"Name":"x","MemUsage":"1.5GiB / 62.6GiB","PIDs":"31"}'
    assert containerstats.parse(line) == {"memory_bytes": 1610612736, "limit_bytes": int(62.6 * 1024**3), "pids": 31,
                                          "raw": "1.5GiB / 62.6GiB"}
    assert containerstats.parse("Error: no container with name or ID \"x\" found") is None
    assert containerstats.parse("") is None
    assert containerstats.parse_size("12kB") == 12000 and containerstats.parse_size("nonsense") is None


def _sample(t: float, usage: int) -> procmem.TreeSample:
    return procmem.TreeSample(t=t, bytes=1, source="pss", procs=[{"pid": 1}],
                              cgroup={"version": 1, "path": "/x", "usage_bytes": usage, "working_set_bytes": usage - 10})


def test_cgroup_peak_is_over_the_benchmark_and_never_below_idle() -> None:
    idle = _sample(0.0, 1000)
    samples = [_sample(1.0, 900), _sample(2.0, 5000), _sample(9.0, 99999)]  # 9.0: while it shut down
    out = procmem.cgroup_summary(samples, idle, (0.5, 3.0))
    assert out == {"version": 1, "path": "/x", "idle_working_set_bytes": 990, "idle_usage_bytes": 1000,
                   "peak_working_set_bytes": 4990, "peak_usage_bytes": 5000, "samples": 3}
    quiet = procmem.cgroup_summary([_sample(9.0, 5)], idle, (0.5, 3.0))
    assert quiet is not None and quiet["peak_usage_bytes"] == 1000
    assert procmem.cgroup_summary([procmem.TreeSample(0, 1, "pss", [])], None, None) is None


def test_llama_cpp_in_podman_renders_a_named_container_with_the_model_mounted(tmp_path: Path) -> None:
    book = yaml_helpers.dump([{"hosts": "all", "backends": [
        {"name": "boxed", "kind": "llama.cpp", "model": "~/models/my model.gguf", "port": 8080, "launcher": "podman",
         "image": "ghcr.io/ggml-org/llama.cpp:server", "container_args": ["--ulimit", "nproc=4096:4096"],
         "api_key": "k-123"}]}], tmp_path / "pb.yml")
    proc = llmops("check", str(book), check=True)
    # `~/` stays unquoted at the start of the word so that the host's shell expands it.
    assert ("$ podman run --rm --name llmops-boxed-8080 --network host -v ~/'models/my model.gguf':"
            "'/llmops-model/my model.gguf':ro -e LLAMA_API_KEY --ulimit nproc=4096:4096 "
            "ghcr.io/ggml-org/llama.cpp:server --model '/llmops-model/my model.gguf' --host 127.0.0.1 --port 8080"
            ) in proc.stdout, proc.stdout
    assert "k-123" not in proc.stdout


def test_container_options_need_a_container_launcher(tmp_path: Path) -> None:
    book = yaml_helpers.dump([{"hosts": "all", "backends": [
        {"name": "b", "kind": "llama.cpp", "model": "/m.gguf", "port": 8080, "image": "x:1"}]}], tmp_path / "pb.yml")
    proc = llmops("check", str(book))
    assert proc.returncode == 2 and "need launcher: docker or podman" in proc.stderr, proc.stderr
    book.write_text(book.read_text().replace("image: x:1", "launcher: podman"))
    proc = llmops("check", str(book))
    assert proc.returncode == 2 and "needs an `image:`" in proc.stderr, proc.stderr


class ShellAgent:
    """Answers the agent's `tool` call by running the command here, as the host agent would."""

    def call(self, *args: str, timeout: float = 60, check: bool = True) -> dict:
        import subprocess

        assert args[0] == "tool"
        done = subprocess.run(["/bin/sh", "-c", args[-1]], capture_output=True, text=True, timeout=timeout)
        return {"rc": done.returncode, "out": done.stdout}


def test_compile_cache_state_is_cold_until_the_folder_holds_something(tmp_path: Path) -> None:
    from llmops.execute.cell import CellRun

    run = CellRun.__new__(CellRun)  # only the agent is needed for this step
    run.agent = ShellAgent()
    cache = tmp_path / "my vllm cache"
    assert run._cache_state([str(cache)]) == "cold"  # missing
    cache.mkdir()
    assert run._cache_state([str(cache)]) == "cold"  # empty
    (cache / "torch_compile_cache").mkdir()
    assert run._cache_state([str(cache)]) == "warm"
    assert run._cache_state([str(cache), str(tmp_path / "other")]) == "cold"  # every cache must be warm
    assert run._cache_state([]) is None
